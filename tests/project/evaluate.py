"""Accuracy of the trained model on the validation split."""

import json

import mlflow.pytorch
from common import load

net = mlflow.pytorch.load_model("model")
x, y = load("val")
accuracy = float((net(x).argmax(1) == y).float().mean()) if len(y) else 0.0
json.dump({"val_accuracy": accuracy, "val_samples": len(y)}, open("metrics.json", "w"))
json.dump({"inputs": x.tolist(), "labels": y.tolist()}, open("smoke.json", "w"))  # what `alops deploy` scores
