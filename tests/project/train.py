"""Train a small MLP on the digits features of the configured dataset."""

import json
import os
import shutil

import mlflow.pytorch
import torch
from common import device, load, model, params
from mlflow.models import infer_signature

config = params()["train"]
torch.manual_seed(config.get("seed", 0))
x, y = load("train")
net = model(config["hidden"]).to(device())
optimiser = torch.optim.Adam(net.parameters(), lr=config["lr"])
history = []
for epoch in range(1, config["epochs"] + 1):
    optimiser.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x.to(device())), y.to(device()))
    loss.backward()
    optimiser.step()
    history.append({"epoch": epoch, "loss": float(loss)})
shutil.rmtree("model", ignore_errors=True)
example = x[:5].numpy()
signature = infer_signature(example, net.cpu()(x[:5]).detach().numpy())  # float32 in: the server casts requests
mlflow.pytorch.save_model(net.cpu(), "model", signature=signature, pip_requirements=["torch"],
                          serialization_format="pickle")  # an MLflow model: servable
os.makedirs("plots", exist_ok=True)
json.dump({"train": history}, open("plots/train.json", "w"))
