"""Load: the manifest (id, path, label, split; an empty label is an unlabeled sample) and its images."""

from __future__ import annotations

import csv
import os

import numpy as np
from PIL import Image


def read_manifest(folder: str, manifest: str = "manifest.csv") -> list[dict]:
    with open(os.path.join(folder, manifest), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def load_image(folder: str, path: str, size: int) -> np.ndarray | None:
    """The image as a (size, size) float array in [0, 1]; None when it is missing or unreadable."""
    try:
        with Image.open(os.path.join(folder, path)) as image:
            return np.asarray(image.convert("L").resize((size, size)), dtype=np.float32) / 255.0
    except (OSError, ValueError):
        return None
