"""Prediction capture: what a served model scores, as the JSON Lines log `alops pool add` reads.

One row per scored sample: `id` (a random 62-bit integer, which fits integer and string manifest ids), `time`,
`model_version`, `prediction` (the class index), `probabilities`, and what the model saw: the named columns of
a dataframe request (the manifest's features), or, for an image tensor (one (H, W) or (1, H, W) array per sample
in [0, 1]), a grayscale PNG under `inputs/` named by `path`, relative to the log's folder as `pool add` expects.
A request's own `id`, `path`, `time`, `model_version`, `prediction` and `probabilities` fields never overwrite
the row's. Values are strict JSON: NaN and infinities are written as null.

Capture is off the request's path: `CaptureProcess.submit` puts the raw request and answer on a bounded queue
and returns; a writer process of its own parses them, encodes the PNGs (Pillow) and appends whole lines with a
`PredictionLog`, so encoding never holds the scoring process's GIL. Nothing is dropped silently:
a full queue, a request the log cannot read and a failed write (a full disk, a file-size limit) are each
counted (`stats`) and logged on the `alops.serve` logger, and serving goes on. A failed write is cut back to
the last whole line, and a log torn by a killed process is cut back to its last whole line when the next one
starts, so the log only ever holds whole JSON lines.

The log is `predictions.jsonl`; past `max_bytes`, when its first row is `max_age_s` old (so a quiet endpoint's
rows still reach the intake), and on a clean stop (after the queue drains) it is renamed
`predictions-<UTC time>-<pid>-<n>.jsonl` (a finished log, ready to pull) and a new one starts.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import math
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from alops.core.errors import ConfigError
from alops.core.files import rename

CURRENT = "predictions.jsonl"
DEFAULT_MAX_AGE_S = 3600.0  # a log's first row waits at most an hour for the intake
DEFAULT_QUEUE = 10_000  # requests waiting for the writer; past it a request's rows are dropped (and counted)
INPUTS = "inputs"
ROW_FIELDS = ("id", "time", "model_version", "prediction", "probabilities", "path", "input")
logger = logging.getLogger("alops.serve")


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of a (H, W) array in [0, 1]."""
    from PIL import Image

    pixels = np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG", compress_level=1)
    return out.getvalue()


def request_samples(body) -> tuple[list[dict] | None, np.ndarray | None]:
    """(named feature rows, or None; the tensor of per-sample inputs, or None) of an MLflow scoring request.
    A request the log cannot read raises ValueError (it is counted, never logged half)."""
    if not isinstance(body, dict):
        raise ValueError("the request is not a JSON object")
    if "dataframe_split" in body:
        frame = body["dataframe_split"]
        if not isinstance(frame, dict) or not isinstance(frame.get("data"), list):
            raise ValueError("dataframe_split without a data list")
        columns = frame.get("columns") or [str(index) for index in range(len(frame["data"][0]) if frame["data"] else 0)]
        if not all(isinstance(row, list) and len(row) == len(columns) for row in frame["data"]):
            raise ValueError("dataframe_split rows that do not match its columns")
        return [dict(zip(map(str, columns), row)) for row in frame["data"]], None
    if "dataframe_records" in body:
        records = body["dataframe_records"]
        if not isinstance(records, list) or not all(isinstance(row, dict) for row in records):
            raise ValueError("dataframe_records is not a list of objects")
        return records, None
    for key in ("inputs", "instances"):
        if key in body and not isinstance(body[key], dict):
            return None, np.asarray(body[key], dtype=np.float64)
    return None, None


def probabilities(outputs, logits: bool) -> np.ndarray | None:
    """Class probabilities (N, C) from a scoring response's predictions: a softmax over logits, or the rows."""
    try:
        values = np.asarray(outputs, dtype=np.float64) if not isinstance(outputs, dict) else None
    except (ValueError, TypeError):
        return None
    if values is None or values.ndim != 2:
        return None
    if logits:
        shifted = np.exp(values - values.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return values


def strict(value):
    """`value` with every NaN or infinity as None, so the line is JSON that every reader accepts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strict(item) for item in value]
    return value


COUNTERS = ("rows", "dropped_queue_full", "unreadable", "write_failures", "rows_lost_to_write_failures",
            "torn_tail_repaired")


@dataclass
class CaptureStats:
    """What capture did since the server started: rows written, and every row that did not make it, by cause."""

    rows: int = 0
    dropped_queue_full: int = 0
    unreadable: int = 0
    write_failures: int = 0
    rows_lost_to_write_failures: int = 0
    torn_tail_repaired: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {name: getattr(self, name) for name in COUNTERS}


def prepare_folder(folder: str) -> str:
    """The log's folder, absolute, with its `inputs/`; one line when this user cannot write there."""
    folder = os.path.abspath(folder)
    try:
        os.makedirs(os.path.join(folder, INPUTS), exist_ok=True)
        os.close(os.open(os.path.join(folder, CURRENT), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    except OSError as exc:
        raise ConfigError(f"cannot write the prediction log in {folder} ({exc.strerror}): "
                          "give --log-dir a folder this user can write") from None
    return folder


class PredictionLog:
    """The rotating log of one serving process; `record` is safe to call from many threads."""

    def __init__(self, folder: str, max_bytes: int = 64 << 20, max_age_s: float = DEFAULT_MAX_AGE_S):
        self.folder = prepare_folder(folder)
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        self.stats = CaptureStats()
        self._lock = threading.Lock()  # the file: writes, rotation
        self._rotations = 0
        self._fd = self._open()
        self._first_row = os.path.getmtime(self._path) if os.fstat(self._fd).st_size else None
        self._stopped = threading.Event()
        self._clock = threading.Thread(target=self._finish_by_age, name="prediction-log-age", daemon=True)
        self._clock.start()

    @property
    def _path(self) -> str:
        return os.path.join(self.folder, CURRENT)

    def _open(self) -> int:
        """Open the current log for appending, first cutting a torn last line (a killed process's) away."""
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(fd).st_size
        if size:
            tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = max(0, size - len(tail)) + cut + 1 if cut >= 0 else 0
                os.ftruncate(fd, keep)
                self.stats.add(torn_tail_repaired=1)
                logger.warning("capture: %s ended in a torn line (a stopped process's); cut back to %d bytes of "
                               "whole lines", self._path, keep)
        return fd

    def record(self, body, predictions, model_version: str, logits: bool) -> int:
        """Write the rows of one scored request now (parsed request, predictions); how many were written."""
        try:
            lines = self._lines(body, predictions, model_version, logits)
        except (ValueError, TypeError, KeyError) as exc:
            self.stats.add(unreadable=1)
            logger.warning("capture: a scored request was not logged: %s", exc)
            return 0
        except OSError as exc:  # an input file could not be written
            self.stats.add(write_failures=1)
            logger.error("capture: a scored request was not logged: %s; serving goes on", exc)
            return 0
        return self._append(lines)

    def write_scored(self, body: bytes, answer: bytes, model_version: str, logits: bool) -> int:
        """Write the rows of one scored request given as raw JSON (request and answer) now."""
        try:
            document = json.loads(body)
            predictions = json.loads(answer).get("predictions")
        except (ValueError, AttributeError) as exc:
            self.stats.add(unreadable=1)
            logger.warning("capture: a scored request was not logged: %s", exc)
            return 0
        return self.record(document, predictions, model_version, logits)

    def _lines(self, body, predictions, model_version: str, logits: bool) -> list[str]:
        rows, tensor = request_samples(body)
        count = len(rows) if rows is not None else (len(tensor) if tensor is not None and tensor.ndim else 0)
        probs = probabilities(predictions, logits)
        if not count:
            raise ValueError("the request holds no sample the log can read")
        if probs is not None and len(probs) != count:
            raise ValueError(f"{count} samples but {len(probs)} answers")
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        lines = []
        for index in range(count):
            sample = int.from_bytes(os.urandom(8), "big") >> 2
            row: dict = {"id": sample, "time": stamp, "model_version": model_version}
            if probs is not None:
                row["prediction"] = int(np.nan_to_num(probs[index], nan=-np.inf).argmax())
                row["probabilities"] = [round(float(p), 6) for p in probs[index]]
            if rows is not None:
                row.update({str(k): v for k, v in rows[index].items() if str(k) not in ROW_FIELDS})
            else:
                assert tensor is not None  # count came from it
                row.update(self._input(sample, tensor[index]))
            lines.append(json.dumps(strict(row), allow_nan=False) + "\n")
        return lines

    def _append(self, lines: list[str]) -> int:
        data = "".join(lines).encode()
        with self._lock:
            start = os.fstat(self._fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as exc:
                try:
                    os.ftruncate(self._fd, start)  # never a torn line
                except OSError:
                    pass
                self.stats.add(write_failures=1, rows_lost_to_write_failures=len(lines))
                logger.error("capture: %d rows not logged: %s (%s); serving goes on", len(lines), exc.strerror,
                             self._path)
                return 0
            if self._first_row is None:
                self._first_row = time.time()
            self.stats.add(rows=len(lines))
            if start + len(data) >= self.max_bytes or self._too_old():
                self._rotate()
        return len(lines)

    def _too_old(self) -> bool:
        return self._first_row is not None and time.time() - self._first_row >= self.max_age_s

    def _finish_by_age(self) -> None:
        """Finish the log once its first row is max_age_s old, requests or not."""
        while not self._stopped.wait(min(60.0, max(self.max_age_s / 4, 0.05))):
            with self._lock:
                if self._too_old() and self._fd >= 0:
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
        os.close(self._fd)
        self._fd = -1
        self._first_row = None
        self._rotations += 1
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        rename(self._path, os.path.join(self.folder, f"predictions-{stamp}-{os.getpid()}-{self._rotations}.jsonl"))
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)

    def close(self) -> None:
        """A clean stop: the rows logged so far become a finished log."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with self._lock:
            if self._fd < 0:
                return
            if os.fstat(self._fd).st_size:
                self._rotate()
            os.close(self._fd)
            self._fd = -1


class SharedStats:
    """Capture's counters in memory shared with the writer process."""

    def __init__(self, context):
        self.values = context.Array("q", len(COUNTERS))

    def add(self, **counts: int) -> None:
        with self.values.get_lock():
            for name, count in counts.items():
                self.values[COUNTERS.index(name)] += count

    def as_dict(self) -> dict[str, int]:
        with self.values.get_lock():
            return dict(zip(COUNTERS, self.values[:]))


class CaptureProcess:
    """A PredictionLog written by a child process: `submit` hands the raw request and answer over a bounded
    queue (a full queue drops the request, counted); `close` drains it and finishes the log."""

    def __init__(self, folder: str, max_bytes: int = 64 << 20, max_age_s: float = DEFAULT_MAX_AGE_S,
                 queue_size: int = DEFAULT_QUEUE):
        self.folder = prepare_folder(folder)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: the server's threads stay behind
        self._queue, self._queue_size = context.Queue(queue_size), queue_size
        self.stats = SharedStats(context)
        self._process = context.Process(target=_write_in_child, name="alops-capture-writer", daemon=True,
                                        args=(self.folder, max_bytes, max_age_s, self._queue, self.stats.values))
        self._process.start()
        self._closed = False

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, body: bytes, answer: bytes, model_version: str, logits: bool) -> bool:
        try:
            self._queue.put_nowait((body, answer, model_version, logits))
        except queue.Full:
            self.stats.add(dropped_queue_full=1)
            logger.warning("capture: the writer is %d requests behind; a request's rows were dropped", self._queue_size)
            return False
        return True

    def close(self) -> None:
        """A clean stop: every queued request is written and the log is finished."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._process.join()
        self._queue.close()


def _write_in_child(folder: str, max_bytes: int, max_age_s: float, requests: multiprocessing.Queue, counters) -> None:
    """The writer process: requests from the queue into the log until None, or until the server is gone."""
    for stop in (signal.SIGINT, signal.SIGTERM):  # the server decides when capture stops (after it drains)
        signal.signal(stop, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = os.getppid()
    log = PredictionLog(folder, max_bytes, max_age_s)
    shared = log.stats.as_dict()

    def publish() -> None:
        nonlocal shared
        now = log.stats.as_dict()
        with counters.get_lock():
            for index, name in enumerate(COUNTERS):
                counters[index] += now[name] - shared[name]
        shared = now

    try:
        while True:
            try:
                item = requests.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != server:  # the server was killed: finish what came, then stop
                    break
                publish()
                continue
            if item is None:
                break
            try:
                log.write_scored(*item)
            except Exception as exc:  # one request must never stop capture: counted, logged, the next one goes on
                log.stats.add(unreadable=1)
                logger.error("capture: a scored request was not logged: %s: %s", type(exc).__name__, exc)
            publish()
    finally:
        log.close()
        publish()
