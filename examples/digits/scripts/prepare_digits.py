"""The digits example's data: scikit-learn's digits (no download) as 8x8 PNG files plus a manifest.

A share of the training samples is left unlabeled, the pool active learning draws from; their true labels go
to a separate oracle file, outside the data, for `alops demo` to stand in for the labelers.

    python scripts/prepare_digits.py data/full --unlabeled 0.6 --oracle ../oracle.csv
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def prepare(folder: str, unlabeled: float, oracle: str | None, seed: int = 0) -> None:
    digits = load_digits()
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    hidden = []
    with open(os.path.join(folder, "manifest.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "label", "split"])
        for index, (image, label) in enumerate(zip(digits.images, digits.target)):
            name = f"images/{index:04d}.png"
            Image.fromarray((image * 255 / 16).astype(np.uint8)).save(os.path.join(folder, name))
            split = ["train", "train", "train", "val", "test"][index % 5]
            shown = "" if split == "train" and rng.random() < unlabeled else str(label)
            if not shown:
                hidden.append((str(index), str(label)))
            writer.writerow([index, name, shown, split])
    if oracle:
        with open(oracle, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([("sample_id", "label"), *hidden])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--unlabeled", type=float, default=0.6, help="Share of training samples left unlabeled.")
    parser.add_argument("--oracle", help="Where to write the hidden labels (sample_id,label).")
    arguments = parser.parse_args()
    prepare(arguments.folder, arguments.unlabeled, arguments.oracle)
