"""Evaluate: accuracy on the validation split (metrics.json, which dvc.yaml declares), on its production slice
too once labeled live samples reach it (live_accuracy, live_samples), and that split as the smoke set
`alops deploy` scores at the deployed endpoint (smoke.json: inputs and class indices)."""

from __future__ import annotations

import json

import numpy as np
import torch

from stages.common import params


def predict(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C)."""
    net.eval()
    with torch.no_grad():
        return torch.softmax(net(torch.tensor(x)), dim=1).numpy()


def load_model(folder: str = "model") -> torch.nn.Module:
    """The MLflow model folder the train stage saved."""
    import mlflow.pytorch

    return mlflow.pytorch.load_model(folder, map_location="cpu")


def main() -> None:
    settings = params()
    data = np.load("work/processed.npz")
    chosen = (data["split"] == "val") & (data["y"] >= 0) & data["readable"]
    probs = predict(load_model(), data["x"][chosen])
    accuracy = float((probs.argmax(1) == data["y"][chosen]).mean()) if chosen.any() else 0.0
    labeled = int((data["y"] >= 0).sum())  # grows with every active-learning round
    metrics = {"val_accuracy": accuracy, "val_samples": int(chosen.sum()), "labeled": labeled}
    live = data["live"][chosen]
    if live.any():  # the same model on the validation samples that came from production
        metrics.update(live_accuracy=float((probs.argmax(1) == data["y"][chosen])[live].mean()), live_samples=int(live.sum()))
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    with open("smoke.json", "w", encoding="utf-8") as handle:
        json.dump({"inputs": data["x"][chosen].tolist(), "labels": data["y"][chosen].tolist()}, handle)


if __name__ == "__main__":
    main()
