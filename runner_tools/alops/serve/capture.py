"""Prediction capture: what a served model scores, as the JSON Lines log `alops pool add` reads.

One row per scored sample: `id` (a random 62-bit integer, which fits integer and string manifest ids), `time`, `model_version`, `prediction` (the class index), `probabilities`, and
what the model saw: the named columns of a dataframe request (the manifest's features), or, for an image
tensor (one (H, W) or (1, H, W) array per sample in [0, 1]), a grayscale PNG under `inputs/` named by `path`,
relative to the log's folder as `pool add` expects. The log is `predictions.jsonl`; past `max_bytes`, when
its first row is `max_age_s` old (so a quiet endpoint's rows still reach the intake), and on a clean stop it is
renamed `predictions-<UTC time>-<pid>-<n>.jsonl` (a finished log, ready to pull) and a new one starts. Every row
is written and flushed under one lock before the response goes back, so a burst loses nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import struct
import threading
import time
import zlib

import numpy as np

from alops.core.files import rename

CURRENT = "predictions.jsonl"
DEFAULT_MAX_AGE_S = 3600.0  # a log's first row waits at most an hour for the intake
INPUTS = "inputs"


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of a (H, W) array in [0, 1]."""
    pixels = np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    height, width = pixels.shape
    raw = b"".join(b"\0" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def request_samples(body: dict) -> tuple[list[dict] | None, np.ndarray | None]:
    """(named feature rows, or None; the tensor of per-sample inputs, or None) of an MLflow scoring request."""
    if "dataframe_split" in body:
        frame = body["dataframe_split"]
        return [dict(zip(frame["columns"], row)) for row in frame["data"]], None
    if "dataframe_records" in body:
        return list(body["dataframe_records"]), None
    for key in ("inputs", "instances"):
        if key in body and not isinstance(body[key], dict):
            return None, np.asarray(body[key], dtype=np.float64)
    return None, None


def probabilities(outputs, logits: bool) -> np.ndarray | None:
    """Class probabilities (N, C) from a scoring response's predictions: a softmax over logits, or the rows."""
    values = np.asarray(outputs, dtype=np.float64) if not isinstance(outputs, dict) else None
    if values is None or values.ndim != 2:
        return None
    if logits:
        shifted = np.exp(values - values.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return values


class PredictionLog:
    """The rotating log of one serving process; `record` is safe to call from many threads."""

    def __init__(self, folder: str, max_bytes: int = 64 << 20, max_age_s: float = DEFAULT_MAX_AGE_S):
        self.folder = os.path.abspath(folder)
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        os.makedirs(os.path.join(self.folder, INPUTS), exist_ok=True)
        self._lock = threading.Lock()
        self._rotations = 0
        self._handle = open(os.path.join(self.folder, CURRENT), "a", encoding="utf-8")
        # rows an earlier process left count from the file's last write
        self._first_row = os.path.getmtime(self._handle.name) if self._handle.tell() else None
        self._stopped = threading.Event()
        self._clock = threading.Thread(target=self._finish_by_age, name="prediction-log-age", daemon=True)
        self._clock.start()

    def record(self, body: dict, predictions, model_version: str, logits: bool) -> int:
        """Log the samples of one scored request; how many rows were written."""
        rows, tensor = request_samples(body)
        count = len(rows) if rows is not None else (len(tensor) if tensor is not None and tensor.ndim else 0)
        probs = probabilities(predictions, logits)
        if not count or (probs is not None and len(probs) != count):
            return 0
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        lines = []
        for index in range(count):
            sample = int.from_bytes(os.urandom(8), "big") >> 2
            row = {"id": sample, "time": stamp, "model_version": model_version}
            if probs is not None:
                row["prediction"] = int(probs[index].argmax())
                row["probabilities"] = [round(float(p), 6) for p in probs[index]]
            if rows is not None:
                row.update({k: v for k, v in rows[index].items() if k not in row})
            else:
                assert tensor is not None  # count came from it
                row.update(self._input(sample, tensor[index]))
            lines.append(json.dumps(row) + "\n")
        with self._lock:
            self._handle.write("".join(lines))
            self._handle.flush()
            if self._first_row is None:
                self._first_row = time.time()
            if self._handle.tell() >= self.max_bytes or self._too_old():
                self._rotate()
        return count

    def _too_old(self) -> bool:
        return self._first_row is not None and time.time() - self._first_row >= self.max_age_s

    def _finish_by_age(self) -> None:
        """Finish the log once its first row is max_age_s old, requests or not."""
        while not self._stopped.wait(min(60.0, max(self.max_age_s / 4, 0.05))):
            with self._lock:
                if self._too_old() and not self._handle.closed:
                    self._rotate()

    def _input(self, sample: int, values: np.ndarray) -> dict:
        """An image input as a PNG file beside the log (`path`), anything else as its values (`input`)."""
        image = values[0] if values.ndim == 3 and values.shape[0] == 1 else values
        if image.ndim == 2 and image.size and 0.0 <= image.min() and image.max() <= 1.0:
            relative = f"{INPUTS}/{sample}.png"
            with open(os.path.join(self.folder, relative), "wb") as out:
                out.write(png_bytes(image))
            return {"path": relative}
        return {"input": values.tolist()}

    def _rotate(self) -> None:
        self._handle.close()
        self._first_row = None
        self._rotations += 1
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        rename(os.path.join(self.folder, CURRENT),
               os.path.join(self.folder, f"predictions-{stamp}-{os.getpid()}-{self._rotations}.jsonl"))
        self._handle = open(os.path.join(self.folder, CURRENT), "a", encoding="utf-8")

    def close(self) -> None:
        """A clean stop: the rows logged so far become a finished log."""
        self._stopped.set()
        with self._lock:
            if self._handle.closed:
                return
            if self._handle.tell():
                self._rotate()
            self._handle.close()
