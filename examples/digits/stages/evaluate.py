"""Evaluate: accuracy on the validation split (metrics.json, which dvc.yaml declares)."""

from __future__ import annotations

import json

import numpy as np
import torch

from stages.common import params
from stages.model import cnn


def predict(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C)."""
    net.eval()
    with torch.no_grad():
        return torch.softmax(net(torch.tensor(x)), dim=1).numpy()


def load_model(settings: dict, size: int) -> torch.nn.Module:
    net = cnn(len(settings["classes"]), settings["train"]["channels"], size)
    net.load_state_dict(torch.load("model.pt"))
    return net


def main() -> None:
    settings = params()
    data = np.load("work/processed.npz")
    chosen = (data["split"] == "val") & (data["y"] >= 0) & data["readable"]
    probs = predict(load_model(settings, data["x"].shape[-1]), data["x"][chosen])
    accuracy = float((probs.argmax(1) == data["y"][chosen]).mean()) if chosen.any() else 0.0
    labeled = int((data["y"] >= 0).sum())  # grows with every active-learning round
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump({"val_accuracy": accuracy, "val_samples": int(chosen.sum()), "labeled": labeled}, handle)


if __name__ == "__main__":
    main()
