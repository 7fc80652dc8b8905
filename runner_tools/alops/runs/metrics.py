"""Metrics as DVC sees them: the files dvc.yaml declares (JSON, YAML or TOML; kept in git or cached by DVC), in
the workspace or at a revision, flattened to dotted names with the one normaliser tracking also uses, so a
committed metric, a workspace metric and a tracked metric of the same name meet in the report."""

from __future__ import annotations

import re

from alops.core.errors import AlopsError

DEV_FIDELITY = "dev_fidelity.json"  # the fidelity report `alops data make-dev` writes (a metrics file, not model metrics)


def metric_name(name: str) -> str:
    """A name MLflow accepts: letters, digits, _ - . space and single inner slashes (no `//`, `..`, leading `/`)."""
    name = re.sub(r"[^\w\-. /]", "_", name)
    name = re.sub(r"/{2,}", "/", name).strip("/")
    return re.sub(r"\.{2,}", ".", name) or "_"


# `name: 0.93`, `name = 0.93`, `name=0.93`: a metric as training scripts print it (names may hold / . - _)
TEXT_METRIC = re.compile(r"(?<![\w./-])([A-Za-z][\w./-]*)\s*[:=]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])")


def metrics_from_text(text: str, names: list[str] | None = None) -> dict[str, float]:
    """The `name: number` / `name=number` pairs a script printed, the last value of each name winning; with
    `names`, those only, and every one of them must be there."""
    found: dict[str, float] = {}
    for match in TEXT_METRIC.finditer(text):
        name, value = match.group(1).rstrip("./-"), float(match.group(2))
        if names is None or name in names:
            found[name] = value
    if names:
        missing = [name for name in names if name not in found]
        if missing:
            raise AlopsError(f"no {', '.join(missing)} in the text: print it as `{missing[0]}: <number>` "
                             f"or `{missing[0]}=<number>`")
    if not found:
        raise AlopsError("no metric in the text: print each as `name: <number>` or `name=<number>` "
                         "(e.g. `accuracy: 0.93`)")
    return found


def flat_numbers(tree, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested mapping, keyed by dotted name (`{"a": {"b": 1}}` -> `{"a.b": 1.0}`)."""
    flat = {}
    for key, value in (tree or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_numbers(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def _show(project, revision: str | None) -> dict:
    """{path: {"data": ...} | {"error": exc}} of the declared metrics files, in the workspace or at `revision`."""
    from dvc.exceptions import DvcException

    try:
        shown = project.dvc.metrics.show(revs=[revision] if revision else None, hide_workspace=False)
    except DvcException as exc:
        raise AlopsError(f"dvc could not read the metrics{f' of {revision}' if revision else ''}: {exc}") from None
    for rev, result in shown.items():
        if (rev in ("", "workspace")) == (revision is None):
            return result.get("data") or {}
    return {}


def _named(data) -> dict[str, float]:
    return {metric_name(name): value for name, value in flat_numbers(data).items()}


def workspace_metrics_by_file(project) -> dict[str, dict[str, float]]:
    """The metrics the pipeline just wrote, per file; one line naming the file when one is missing or unreadable."""
    found: dict[str, dict[str, float]] = {}
    for path, result in sorted(_show(project, None).items()):
        error = result.get("error")
        if isinstance(error, FileNotFoundError):
            raise AlopsError(f"{path}: the metrics file dvc.yaml declares was not written by the pipeline")
        kind = path.rpartition(".")[2].upper()
        if error is not None or not isinstance(result.get("data"), dict):
            shape = f" ({type(result['data']).__name__})" if error is None else ""
            raise AlopsError(f"{path}: not valid {kind}{shape}; the stage must write an object of metrics")
        found[path] = _named(result["data"])
    return found


def workspace_metrics(project) -> dict[str, float]:
    """All the metrics the pipeline just wrote, merged."""
    return {name: value for metrics in workspace_metrics_by_file(project).values() for name, value in metrics.items()}


def is_fidelity_file(path: str) -> bool:
    return path.replace("\\", "/").rpartition("/")[2] == DEV_FIDELITY


def revision_metrics(project, commit: str) -> dict[str, float] | None:
    """The metrics committed at `commit` (cached files come from DVC's cache or remote); None when it has no
    readable metrics."""
    readable = [result["data"] for result in _show(project, commit).values() if isinstance(result.get("data"), dict)]
    if not readable:
        return None
    metrics: dict[str, float] = {}
    for data in readable:
        metrics.update(_named(data))
    return metrics
