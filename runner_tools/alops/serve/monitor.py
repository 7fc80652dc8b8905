"""Per-version monitoring from the prediction logs: for each model version that served, how many samples it
scored and when, the mix of classes it predicted against the training data's label mix (the drift check's
size-aware chi-square test), and, for the logged samples that have been labelled since (label rounds, the
intake), its live accuracy with a 95% Wilson interval. SLOs turn the record into a verdict; a record of nothing
is refused, never passed."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field

from alops.core.errors import AlopsError, ConfigError
from alops.data.drift import Test, class_shares

CONFIDENCE = 0.95


@dataclass
class Version:
    """What one model version did in the logs."""

    name: str
    rows: int = 0
    first: str = ""
    last: str = ""
    predicted: dict[str, int] = field(default_factory=dict)
    hours: dict[str, int] = field(default_factory=dict)  # rows per UTC hour (ISO, to the hour)
    labelled: int = 0
    right: int = 0
    shift: Test | None = None
    moved: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> tuple[float, float, float] | None:
        """(accuracy, low, high) over the labelled samples, or None when none is labelled."""
        if not self.labelled:
            return None
        from scipy.stats import binomtest

        interval = binomtest(self.right, self.labelled).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
        return self.right / self.labelled, float(interval.low), float(interval.high)

    def as_dict(self) -> dict:
        accuracy = self.accuracy
        return {"rows": self.rows, "first": self.first, "last": self.last, "predicted": dict(sorted(self.predicted.items())),
                "rows_per_hour": dict(sorted(self.hours.items())), "labelled": self.labelled,
                "live_accuracy": None if accuracy is None else {"value": accuracy[0], "low": accuracy[1], "high": accuracy[2]},
                "class_shift": None if self.shift is None else {"cramers_v": self.shift.effect, "p": self.shift.p_value,
                                                               "drifted": self.shift.drifted, "moved": self.moved}}


@dataclass
class Monitoring:
    """The record: every version in the logs, the training label mix, and what could not be read."""

    versions: dict[str, Version]
    training: dict[str, int]
    logs: int
    unreadable: int

    def breaches(self, min_accuracy: float | None, class_shift: bool) -> list[str]:
        """One line per SLO a version breaks: its accuracy interval entirely below `min_accuracy`, its predicted
        class mix shifted from the training labels (when `class_shift`)."""
        found = []
        for version in self.versions.values():
            accuracy = version.accuracy
            if min_accuracy is not None and accuracy is not None and accuracy[2] < min_accuracy:
                found.append(f"version {version.name}: live accuracy {accuracy[0]:.3f} (95% {accuracy[1]:.3f}-"
                             f"{accuracy[2]:.3f}, {version.labelled} labelled) is below {min_accuracy:g}")
            if class_shift and version.shift is not None and version.shift.drifted:
                found.append(f"version {version.name}: predicted classes moved from the training labels "
                             f"({version.shift.summary('Cramér V')}; moved: {', '.join(version.moved)})")
        return found

    def as_dict(self) -> dict:
        return {"logs": self.logs, "unreadable_lines": self.unreadable, "training_labels": dict(sorted(self.training.items())),
                "versions": {name: version.as_dict() for name, version in sorted(self.versions.items())}}


def _manifest_labels(manifest: str) -> tuple[dict[str, str], dict[str, int]]:
    """(label by id of every labelled sample, label counts of the training split) of a manifest."""
    from alops.data.manifest import inspect_manifest, iter_batches

    info = inspect_manifest(manifest, required=("id", "label"))
    labels: dict[str, str] = {}
    training: dict[str, int] = {}
    for batch in iter_batches(info):
        ids = [str(v) for v in batch.column("id").to_pylist()]
        values = batch.column("label").to_pylist()
        splits = batch.column("split").to_pylist() if "split" in info.columns else ["train"] * len(ids)
        for sample, label, split in zip(ids, values, splits):
            if label is None or str(label).strip() == "":
                continue
            labels[sample] = str(label)
            if split == "train":
                training[str(label)] = training.get(str(label), 0) + 1
    return labels, training


def _is_hour(text: str) -> bool:
    try:
        datetime.datetime.fromisoformat(text + ":00:00")
    except ValueError:
        return False
    return True


def read_logs(paths: list[str], manifest: str | None) -> Monitoring:
    """The monitoring record of the prediction logs `paths` (files, or folders of `predictions*.jsonl`)."""
    logs = []
    for path in paths:
        if os.path.isdir(path):
            logs += sorted(os.path.join(path, name) for name in os.listdir(path)
                           if name.startswith("predictions") and name.endswith(".jsonl"))
        elif os.path.isfile(path):
            logs.append(path)
        else:
            raise ConfigError(f"{path}: no such log or folder: give the prediction logs `alops serve` writes")
    labels, training = _manifest_labels(manifest) if manifest else ({}, {})
    versions: dict[str, Version] = {}
    unreadable = 0
    for log in logs:
        with open(log, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                    name = str(row["model_version"])
                    stamp = str(row.get("time", ""))
                except (ValueError, KeyError, TypeError):
                    unreadable += bool(line.strip())
                    continue
                version = versions.setdefault(name, Version(name))
                version.rows += 1
                version.first = min(version.first or stamp, stamp)
                version.last = max(version.last, stamp)
                hour = stamp[:13]
                if _is_hour(hour):
                    version.hours[hour] = version.hours.get(hour, 0) + 1
                if "prediction" in row:
                    predicted = str(row["prediction"])
                    version.predicted[predicted] = version.predicted.get(predicted, 0) + 1
                    truth = labels.get(str(row.get("id")))
                    if truth is not None:
                        version.labelled += 1
                        version.right += truth == predicted
    if not versions:
        raise AlopsError(f"no scored sample in {len(logs)} log(s) ({unreadable} unreadable line(s)): nothing to monitor")
    if training:
        for version in versions.values():
            if version.predicted:
                version.shift, version.moved = class_shares(training, version.predicted)
    return Monitoring(versions, training, len(logs), unreadable)


def plot(record: Monitoring, path: str) -> None:
    """One panel per signal, a colour per version: samples scored per hour; predicted class shares against the
    training labels; live accuracy with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(record.versions)
    colours = {name: plt.get_cmap("tab10")(index % 10) for index, name in enumerate(names)}
    figure, (volume, mix, accuracy) = plt.subplots(1, 3, figsize=(15, 4.2))
    for name in names:
        hours = sorted(record.versions[name].hours.items())
        times = [datetime.datetime.fromisoformat(hour + ":00:00") for hour, _ in hours]
        volume.plot(times, [count for _, count in hours], marker="o", color=colours[name], label=f"version {name}")
        if times:  # the version's first sample: when it was deployed, as the logs see it
            volume.axvline(times[0], color=colours[name], linestyle="--", linewidth=1)
    volume.set_ylim(bottom=0)
    volume.set_title("samples scored per hour (dashed: first sample of a version)")
    volume.legend(fontsize=8)
    volume.tick_params(axis="x", labelrotation=30, labelsize=7)
    classes = sorted(set(record.training) | {c for v in record.versions.values() for c in v.predicted},
                     key=lambda c: (len(c), c))
    sides = ([("training labels", record.training, "lightgray")] if record.training else []) + \
        [(f"version {name}", record.versions[name].predicted, colours[name]) for name in names]
    width = 0.8 / max(len(sides), 1)
    for index, (label, counts, colour) in enumerate(sides):
        total = sum(counts.values()) or 1
        mix.bar([position + index * width for position in range(len(classes))],
                [counts.get(c, 0) / total for c in classes], width, color=colour, label=label)
    mix.set_xticks([position + width * (len(sides) - 1) / 2 for position in range(len(classes))], classes)
    mix.set_title("predicted class shares")
    mix.legend(fontsize=8)
    measured = [(name, record.versions[name].accuracy) for name in names if record.versions[name].accuracy]
    for position, (name, value) in enumerate(measured):
        assert value is not None
        accuracy.errorbar([position], [value[0]], yerr=[[value[0] - value[1]], [value[2] - value[0]]], fmt="o",
                          capsize=6, color=colours[name])
        accuracy.annotate(f"{record.versions[name].labelled} labelled", (position, value[1]), fontsize=8,
                          ha="center", va="top", xytext=(0, -4), textcoords="offset points")
    accuracy.set_xticks(range(len(measured)), [f"version {name}" for name, _ in measured])
    accuracy.set_xlim(-0.8, max(len(measured), 1) - 0.2)
    accuracy.set_ylim(0, 1.05)
    accuracy.set_title("live accuracy (95% interval)" if measured else "live accuracy: no labelled sample yet")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
