"""The dev dataset's classes as a model predicts them, so that the drift check compares a prediction log with
predictions of the same model (like with like) instead of with the dev dataset's labels.

The model is what `alops serve` serves (an MLflow model: a folder, `models:/name@alias`, `runs:/...`), fed as
the serving endpoint is fed: a model with named inputs gets a dataframe of the manifest's columns of those names;
a model with one tensor input (images, N x 1 x H x W or N x H x W) gets each row's image file as the capture
records one, grayscale in [0, 1], resized to the tensor's H x W. Its output becomes a class as the prediction
capture makes it (alops.serve.capture): the arg-max of the class probabilities (a softmax first for a PyTorch model's
logits), or the label it returns.

It fails closed: when fewer than MIN_SCORED_SHARE of the dev rows could be predicted (image files missing, as
after `alops data pull --manifest-only`, or damaged), it says how many were scored out of how many and why the
rest were not, instead of comparing a handful of predictions (or none) with the log.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from alops.core.errors import AlopsError, ConfigError
from alops.core.extras import require
from alops.data.manifest import inspect_manifest, iter_batches
from alops.serve.capture import probabilities

IMAGE_BATCH = 256
MIN_SCORED_SHARE = 0.9  # a dev dataset may keep a few damaged files; more unread rows than this is no comparison


@dataclass
class DevPredictions:
    """The dev rows per class as the model predicts them, and how many rows there were and could not be read."""

    counts: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    unreadable: int = 0

    @property
    def scored(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        unread = f" ({self.unreadable} image file(s) missing or unreadable)" if self.unreadable else ""
        return f"the model predicted {self.scored} of {self.rows} dev rows{unread}"


def predicted_classes(model_uri: str, dev_files: list[str], label: str) -> DevPredictions:
    """The dev rows per class as the model predicts them; AlopsError when it predicted too few of them to compare."""
    import mlflow.pyfunc

    from alops.serve.server import resolve

    found = DevPredictions()
    with tempfile.TemporaryDirectory(prefix="alops-drift-model-") as folder:
        model = resolve(model_uri, folder)
        loaded = mlflow.pyfunc.load_model(model.folder)
        schema = loaded.metadata.get_input_schema()
        for path in dev_files:
            info = inspect_manifest(path, required=(), label=label)
            for outputs in _outputs(loaded, schema, info, label, found):
                probs = probabilities(outputs, model.logits)
                classes = probs.argmax(axis=1) if probs is not None else np.asarray(outputs).reshape(-1)
                for value in classes.tolist():
                    found.counts[str(value)] = found.counts.get(str(value), 0) + 1
    if found.rows == 0 or found.scored < MIN_SCORED_SHARE * found.rows:
        fix = (": pull the dev dataset's files (`alops data pull --dataset dev`, not --manifest-only)"
               if found.unreadable else "")
        raise AlopsError(f"drift check not made: {found.summary()}, fewer than {MIN_SCORED_SHARE:.0%}{fix}")
    return found


def _outputs(loaded, schema, info, label: str, found: DevPredictions):
    """The model's outputs over the manifest's rows, batch by batch; `found` counts the rows and the unread ones."""
    if schema is not None and schema.is_tensor_spec() and info.has_path:
        yield from _image_outputs(loaded, schema.inputs[0].shape, info, found)
        return
    wanted = [name for name in schema.input_names() if name] if schema is not None and schema.has_input_names() else None
    features = wanted or [column for column in info.numeric if column != label]
    missing = sorted(set(features) - set(info.numeric))
    if not features or missing:
        raise ConfigError(f"{info.path}: the model's inputs {', '.join(missing) or '(feature columns)'} are not numeric "
                          "columns of the dev dataset, so --model cannot predict its rows; compare without --model "
                          "(the dev labels with the log's classes)")
    for batch in iter_batches(info):
        found.rows += batch.num_rows
        yield loaded.predict(batch.select(features).to_pandas())


def _image_outputs(loaded, shape: tuple, info, found: DevPredictions):
    """Each row's image (its `path`) as the capture gives the endpoint one: grayscale, [0, 1], the tensor's size."""
    image_module = require("PIL.Image", "torch", "--model on image rows")
    if len(shape) not in (3, 4) or shape[-1] <= 0 or shape[-2] <= 0:
        raise ConfigError(f"{info.path}: the model takes tensors of shape {tuple(shape)}, not images (N, 1, H, W) or "
                          "(N, H, W): compare without --model")
    height, width = shape[-2], shape[-1]
    images: list[np.ndarray] = []
    for batch in iter_batches(info):
        for relative in batch.column("path").to_pylist():
            found.rows += 1
            try:
                with image_module.open(os.path.join(info.root, relative or "")) as image:
                    pixels = image.convert("L").resize((width, height))
                    images.append(np.asarray(pixels, dtype=np.float32) / 255.0)
            except (OSError, ValueError):
                found.unreadable += 1  # missing, or a damaged file the dev dataset keeps: no prediction to compare
                continue
            if len(images) == IMAGE_BATCH:
                yield loaded.predict(_stacked(images, shape))
                images = []
    if images:
        yield loaded.predict(_stacked(images, shape))


def _stacked(images: list[np.ndarray], shape: tuple) -> np.ndarray:
    stacked = np.stack(images)
    return stacked[:, None] if len(shape) == 4 else stacked
