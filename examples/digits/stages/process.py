"""Process: images -> one array file the other stages read (labeled and unlabeled samples, in manifest order)."""

from __future__ import annotations

import os

import numpy as np

from stages.common import dataset_folder, params
from stages.load import load_image, read_manifest


def live_ids(folder: str) -> set[str]:
    """The ids of samples that came from production (`alops pool add` lists them in live_ids.txt)."""
    path = os.path.join(folder, "live_ids.txt")
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as handle:
        return {line.rstrip("\n") for line in handle if line.strip()}


def process(folder: str, size: int, classes: list[str]) -> dict[str, np.ndarray]:
    """Every manifest row, in order: x (N, 1, size, size); y the class index, -1 unlabeled, -2 an unknown label;
    readable False where the image is missing or corrupt (its x is zeros); live True for production samples.
    The pool stays aligned with the manifest's unlabeled rows, which is how `alops labels export` maps a
    selection back to samples."""
    xs, ys, splits, ids, readable = [], [], [], [], []
    for row in read_manifest(folder):
        image = load_image(folder, row["path"], size)
        readable.append(image is not None)
        xs.append((image if image is not None else np.zeros((size, size), np.float32))[None])
        ys.append(-1 if row["label"] == "" else classes.index(row["label"]) if row["label"] in classes else -2)
        splits.append(row["split"])
        ids.append(row["id"])
    live = live_ids(folder)
    return {"x": np.stack(xs), "y": np.array(ys), "split": np.array(splits), "id": np.array(ids),
            "readable": np.array(readable), "live": np.array([i in live for i in ids], bool)}


def main() -> None:
    settings = params()
    arrays = process(dataset_folder(settings), settings["process"]["size"], [str(c) for c in settings["classes"]])
    os.makedirs("work", exist_ok=True)
    np.savez_compressed("work/processed.npz", **arrays)


if __name__ == "__main__":
    main()
