"""Train: the CNN on the labeled training samples, saved as an MLflow model folder (`model/`: the pytorch
flavour with a signature and an input example, which `mlflow models serve` and `alops serve` load); per-epoch
loss for the tracking server."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import torch

from stages.common import device, params
from stages.model import cnn


def train(x: np.ndarray, y: np.ndarray, classes: int, channels: int, epochs: int, lr: float, batch: int, seed: int,
          on: str = "cpu") -> tuple[torch.nn.Module, list[dict]]:
    torch.manual_seed(seed)
    net = cnn(classes, channels, x.shape[-1]).to(on)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    inputs, targets = torch.tensor(x), torch.tensor(y)
    history = []
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(targets))
        total = 0.0
        for start in range(0, len(order), batch):
            chosen = order[start:start + batch]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(inputs[chosen].to(on)), targets[chosen].to(on))
            loss.backward()
            optimiser.step()
            total += float(loss) * len(chosen)
        history.append({"epoch": epoch, "loss": total / max(len(order), 1)})
    return net.cpu(), history


def save(net: torch.nn.Module, example: np.ndarray, folder: str = "model") -> None:
    """The model as an MLflow model folder: outputs are logits, one row per input image (N, 1, size, size)."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    net.eval()
    with torch.no_grad():
        outputs = net(torch.tensor(example)).numpy()
    shutil.rmtree(folder, ignore_errors=True)
    mlflow.pytorch.save_model(net, folder, signature=infer_signature(example, outputs), input_example=example,
                              pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"], serialization_format="pickle")


def main() -> None:
    settings = params()
    data = np.load("work/processed.npz")
    chosen = (data["split"] == "train") & (data["y"] >= 0) & data["readable"]
    config = settings["train"]
    net, history = train(data["x"][chosen], data["y"][chosen], len(settings["classes"]), config["channels"],
                         config["epochs"], config["lr"], config["batch"], config["seed"], device())
    save(net, data["x"][chosen][:5])
    os.makedirs("plots", exist_ok=True)
    with open("plots/train.json", "w", encoding="utf-8") as handle:
        json.dump({"train": history}, handle)


if __name__ == "__main__":
    main()
