"""The dev dataset's classes as a model predicts them, so that the drift check compares a prediction log with
predictions of the same model (like with like) instead of with the dev dataset's labels.

The model is what `alops serve` serves (an MLflow model: a folder, `models:/name@alias`, `runs:/...`), fed as
the serving endpoint is fed for tabular data: a dataframe of the manifest's feature columns, named as the model's
input schema names them. Its output becomes a class as the prediction capture makes it (alops.capture): the
arg-max of the class probabilities (a softmax first for a PyTorch model's logits), or the label it returns.
"""

from __future__ import annotations

import tempfile

import numpy as np

from alops.capture import probabilities
from alops.errors import ConfigError
from alops.manifest import inspect_manifest, iter_batches


def predicted_classes(model_uri: str, dev_files: list[str], label: str) -> dict[str, int]:
    """How many dev rows the model puts in each class."""
    import mlflow.pyfunc

    from alops.serving import resolve

    infos = [inspect_manifest(path, required=(), label=label) for path in dev_files]
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="alops-drift-model-") as folder:
        model = resolve(model_uri, folder)
        loaded = mlflow.pyfunc.load_model(model.folder)
        schema = loaded.metadata.get_input_schema()
        wanted = [name for name in schema.input_names() if name] if schema is not None and schema.has_input_names() else None
        for info in infos:
            features = wanted or [column for column in info.numeric if column != label]
            missing = sorted(set(features) - set(info.numeric))
            if not features or missing:
                raise ConfigError(f"{info.path}: the model's inputs {', '.join(missing) or '(feature columns)'} are not "
                                  "numeric columns of the dev dataset, so --model cannot predict its rows; compare "
                                  "without --model (the dev labels with the log's classes)")
            for batch in iter_batches(info):
                outputs = loaded.predict(batch.select(features).to_pandas())
                probs = probabilities(outputs, model.logits)
                classes = probs.argmax(axis=1) if probs is not None else np.asarray(outputs).reshape(-1)
                for value in classes.tolist():
                    counts[str(value)] = counts.get(str(value), 0) + 1
    return counts
