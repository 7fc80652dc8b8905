"""Small real datasets for tests: a manifest with files, features, unlabeled samples and splits."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_full_dataset(folder: Path, n: int = 400, seed: int = 3, extra_rows: list[dict] | None = None) -> list[dict]:
    """`folder/manifest.csv` plus one file per sample under `folder/images/`; returns the rows."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = "" if rng.random() < 0.3 else str(int(rng.integers(0, 4)))
        split = ["train", "val", "test"][int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        path = f"images/{i:05d}.bin"
        (folder / path).write_bytes(rng.bytes(64))
        rows.append({"id": str(i), "label": label, "split": split, "path": path, "x": f"{rng.normal():.6f}"})
    rows.extend(extra_rows or [])
    write_manifest(folder / "manifest.csv", rows)
    return rows


def write_manifest(path: Path, rows: list[dict]) -> None:
    columns = list(rows[0]) if rows else ["id", "label", "split", "path", "x"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_digits(folder: Path) -> None:
    """scikit-learn's digits as a manifest with inline features, a split column and 30% unlabeled."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "split", *[f"f{i}" for i in range(64)]])
        for i, (features, label) in enumerate(zip(digits.data, digits.target)):
            split = ["train", "train", "train", "val", "test"][i % 5]
            shown = "" if split == "train" and rng.random() < 0.3 else int(label)
            writer.writerow([i, shown, split, *[int(v) for v in features]])
