"""Evaluate: accuracy on the validation split (metrics.json, which dvc.yaml declares), each class's precision and
recall (per_class), accuracy on its production slice too once labeled live samples reach it (live_accuracy,
live_samples), the (actual, predicted) pairs the report draws as a confusion matrix (plots/confusion.json), and
that split as the smoke set `alops deploy` scores at the deployed endpoint (smoke.json: inputs and class indices)."""

from __future__ import annotations

import json
import os

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


def per_class(actual: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict:
    """Each class's precision, recall and sample count (0.0 where a class was never predicted or never seen)."""
    found = {}
    for index, name in enumerate(names):
        right = int(((predicted == index) & (actual == index)).sum())
        guessed, present = int((predicted == index).sum()), int((actual == index).sum())
        found[name] = {"precision": right / guessed if guessed else 0.0, "recall": right / present if present else 0.0,
                       "samples": present}
    return found


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
    names = [str(name) for name in settings["classes"]]
    actual, predicted = data["y"][chosen], probs.argmax(1)
    metrics["per_class"] = per_class(actual, predicted, names)
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    os.makedirs("plots", exist_ok=True)
    with open("plots/confusion.json", "w", encoding="utf-8") as handle:
        json.dump([{"actual": names[a], "predicted": names[p]} for a, p in zip(actual, predicted)], handle)
    with open("smoke.json", "w", encoding="utf-8") as handle:
        json.dump({"inputs": data["x"][chosen].tolist(), "labels": data["y"][chosen].tolist()}, handle)


if __name__ == "__main__":
    main()
