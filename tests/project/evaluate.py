"""Accuracy of the trained model on the validation split."""

import json

import torch

from common import load, model, params

net = model(params()["train"]["hidden"])
net.load_state_dict(torch.load("model.pt"))
x, y = load("val")
accuracy = float((net(x).argmax(1) == y).float().mean()) if len(y) else 0.0
json.dump({"val_accuracy": accuracy, "val_samples": len(y)}, open("metrics.json", "w"))
