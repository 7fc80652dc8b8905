"""Train: the CNN on the labeled training samples; per-epoch loss for the tracking server."""

from __future__ import annotations

import json
import os

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


def main() -> None:
    settings = params()
    data = np.load("work/processed.npz")
    chosen = (data["split"] == "train") & (data["y"] >= 0) & data["readable"]
    config = settings["train"]
    net, history = train(data["x"][chosen], data["y"][chosen], len(settings["classes"]), config["channels"],
                         config["epochs"], config["lr"], config["batch"], config["seed"], device())
    torch.save(net.state_dict(), "model.pt")
    os.makedirs("plots", exist_ok=True)
    with open("plots/train.json", "w", encoding="utf-8") as handle:
        json.dump({"train": history}, handle)


if __name__ == "__main__":
    main()
