"""The target's model scored again on this branch's test samples, beside this branch's model: the smoke set the
evaluate stage writes (smoke.json, `{"inputs": [...], "labels": [...]}`, as `alops deploy` smoke-tests it). Both
models answer the same samples, so the target's accuracy is measured on this branch's data (whatever data version
it was trained and scored on), and each sample right or wrong on each side gives a paired bootstrap of the change:
narrower than two accuracies measured apart, and possible with one run a side.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from alops.core.errors import ConfigError
from alops.runs.noise import CONFIDENCE, Change, verdict_of

SMOKE_FILE = "smoke.json"
ROUNDS = 4000


def judges(metric: str) -> bool:
    """Whether re-scoring measures `metric`: an accuracy (the share of the smoke set's labels a model gets right)."""
    return "accuracy" in metric


@dataclass(frozen=True)
class Rescored:
    current: float  # this branch's model on its smoke set
    before: float  # the target's model on the same samples
    change: Change  # the paired bootstrap's interval of current - before


def paired_bootstrap(right_now, right_before, direction: str = "max", rounds: int = ROUNDS, seed: int = 0) -> Change:
    """The 95% percentile interval of mean(right_now) - mean(right_before) over `rounds` resamplings of the
    samples (pairs kept): each sample's difference is -1, 0 or 1, so a resampling is a multinomial draw."""
    import numpy as np

    difference = np.asarray(right_now, dtype=int) - np.asarray(right_before, dtype=int)
    samples = len(difference)
    shares = [float((difference == value).mean()) for value in (-1, 0, 1)]
    counts = np.random.default_rng(seed).multinomial(samples, shares, size=rounds)
    means = (counts[:, 2] - counts[:, 0]) / samples
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = (float(v) for v in np.percentile(means, [tail, 100 - tail]))
    return Change(low, high, (samples, samples), verdict_of(low, high, direction), "paired")


def predicted_classes(model_uri: str, inputs: list):
    """The class each input gets from the MLflow model at `model_uri` (probabilities: their argmax)."""
    import mlflow.pyfunc
    import numpy as np

    model = mlflow.pyfunc.load_model(model_uri)
    if isinstance(inputs[0], dict):
        import pandas as pd

        batch = pd.DataFrame(inputs)
    else:
        batch = np.asarray(inputs, dtype=np.float32)
    answer = np.asarray(model.predict(batch))
    return answer.argmax(1) if answer.ndim == 2 else answer.reshape(-1)


def _score(project, before, direction: str) -> tuple[Rescored | None, str]:
    """This branch's model and the model `before(folder)` returns the location of (a folder to download into
    given), on this branch's smoke set; (None, why) when they cannot both answer it here (no smoke set, no MLflow
    model folder, the model's packages missing)."""
    import numpy as np

    from alops.release.smoke import load_smoke
    from alops.runs.pipeline import pipeline_files

    smoke = os.path.join(project.root, SMOKE_FILE)
    models = [path for path in pipeline_files(project)["models"]
              if os.path.isfile(os.path.join(project.root, path, "MLmodel"))]
    if not os.path.isfile(smoke) or not models:
        return None, f"no {SMOKE_FILE} and MLflow model folder in the workspace to score both models on"
    try:
        inputs, labels = load_smoke(smoke)
    except ConfigError as exc:
        return None, str(exc)
    expected = np.asarray([str(label) for label in labels])
    try:
        with tempfile.TemporaryDirectory(prefix="alops-rescore-") as folder:
            where = before(folder, models[0])
            if where is None:
                return None, f"the other run kept no {models[0]}"
            answers_before = predicted_classes(where, inputs)
        answers_now = predicted_classes(os.path.join(project.root, models[0]), inputs)
    except Exception as exc:
        return None, f"the models could not score it here ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    right_now = np.asarray([str(v) for v in answers_now]) == expected
    right_before = np.asarray([str(v) for v in answers_before]) == expected
    return Rescored(float(right_now.mean()), float(right_before.mean()),
                    paired_bootstrap(right_now, right_before, direction)), ""


def rescore(project, baseline_run_id: str, direction: str = "max") -> tuple[Rescored | None, str]:
    """This branch's model and the target run's (its model folder, downloaded) on this branch's smoke set."""
    from alops.runs.tracking import download_files

    def downloaded(folder: str, path: str) -> str | None:
        return os.path.join(folder, path) if download_files(project.tracking_uri, baseline_run_id, [path], folder) else None

    return _score(project, downloaded, direction)


TAG_RESCORED = "alops.rescored_version"  # the champion version the candidate's run was scored beside
RESCORED_METRICS = ("rescored.candidate", "rescored.champion", "rescored.low", "rescored.high", "rescored.samples")


def rescore_champion(project, model: str, direction: str = "max", echo=print) -> Rescored | None:
    """The `champion` version of `model` and this commit's model on this commit's smoke set, logged on this
    commit's tracked run (the candidate `alops release` gates) for the gate to compare on the same samples;
    None when there is no champion yet."""
    import mlflow.artifacts

    from alops.core.errors import AlopsError
    from alops.release.registry import CHAMPION as ALIAS
    from alops.release.registry import candidate_run
    from alops.runs.tracking import mlflow_client, version_by_alias

    uri = project.tracking_uri
    client = mlflow_client(uri)
    champion = version_by_alias(client, model, ALIAS)
    if champion is None:
        echo(f"rescore: no {ALIAS} of {model!r} yet: nothing to score beside this run")
        return None
    run = candidate_run(client, uri, project.root, project.name, project.context.commit, None)
    def champion_model(folder: str, _path: str) -> str:  # downloaded: the process's tracking URI stays as it was
        return mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model}/{champion.version}",
                                                   dst_path=folder, tracking_uri=uri)

    found, why = _score(project, champion_model, direction)
    if found is None:
        raise AlopsError(f"the {ALIAS} (version {champion.version}) was not scored on this commit's test set: {why}")
    values = (found.current, found.before, found.change.low, found.change.high, float(found.change.samples[0]))
    for name, value in zip(RESCORED_METRICS, values):
        client.log_metric(run.info.run_id, name, value)
    client.set_tag(run.info.run_id, TAG_RESCORED, str(champion.version))
    echo(f"rescore: the {ALIAS} (version {champion.version}) on this commit's test set ({SMOKE_FILE}, "
         f"{found.change.samples[0]} samples): {found.before:.4f}; this run's model {found.current:.4f}; the change's "
         f"95% interval {found.change.low:+.4f} to {found.change.high:+.4f} (paired bootstrap): {found.change.verdict}")
    return found
