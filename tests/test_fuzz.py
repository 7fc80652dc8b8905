"""Property-based fuzzing (hypothesis): the label importer and the manifest reader take thousands of generated
inputs; each either works or raises the project's one-line ConfigError, and a refused import writes nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alops.core.errors import ConfigError

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 10), st.floats(allow_nan=True), st.text(max_size=6))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)
SAMPLES = st.sampled_from(["s1", "s2", "s3", "x"])
ANNOTATION = st.fixed_dictionaries({}, optional={
    "completed_by": st.one_of(st.integers(0, 3), st.text(max_size=3)), "was_cancelled": st.booleans(),
    "result": st.one_of(VALUES, st.lists(st.fixed_dictionaries({"value": st.fixed_dictionaries(
        {}, optional={"choices": st.lists(st.sampled_from(["a", "b", "c", "zz"]), max_size=2)})}), max_size=2))})
TASK = st.one_of(
    st.fixed_dictionaries({"id": st.integers(0, 5)}, optional={
        "data": st.one_of(VALUES, st.fixed_dictionaries({"sample_id": SAMPLES})),
        "annotations": st.one_of(VALUES, st.lists(st.one_of(ANNOTATION, VALUES), max_size=3))}),
    st.fixed_dictionaries({"id": st.integers(0, 5), "sample_id": SAMPLES},
                          optional={"annotator": st.integers(0, 3), "label": st.one_of(VALUES, st.sampled_from(["a", "b"]))}),
    VALUES,
)
EXPORTS = st.one_of(st.lists(TASK, max_size=6), VALUES, st.text(max_size=40).map(lambda t: {"__raw__": t}))
BATCH = {"batch_id": "b1", "sample_ids": ["s1", "s2", "s3"], "classes": ["a", "b", "c"]}
FUZZ = settings(max_examples=1500, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@FUZZ
@given(export=EXPORTS, partial=st.booleans())
def test_label_import_takes_any_export_without_a_traceback_or_a_partial_write(tmp_path_factory, export, partial):
    from alops.labels.handoff import import_labels, read_batch

    folder = tmp_path_factory.mktemp("fuzz")
    manifest = folder / "manifest.csv"
    manifest.write_text("id,label,split\ns1,,train\ns2,,train\ns3,a,train\n")
    (folder / "batch.json").write_text(json.dumps(BATCH))
    path = folder / "export.json"
    path.write_text(export["__raw__"] if isinstance(export, dict) and "__raw__" in export else json.dumps(export))
    before = digest(manifest)
    try:
        report = import_labels(str(path), read_batch(str(folder / "batch.json")), str(manifest), 0.5, partial)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        assert digest(manifest) == before  # refused: nothing written
    else:
        assert set(report.accepted) <= {"s1", "s2", "s3"} and set(report.accepted.values()) <= {"a", "b", "c"}
    assert sorted(p.name for p in folder.iterdir()) == ["batch.json", "export.json", "manifest.csv"]  # no temporary left


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("id,label,split,path,x\n\"0123456789ab .;\t-é")), max_size=200))
def test_the_manifest_reader_takes_any_csv_without_a_traceback(tmp_path_factory, text):
    from alops.data.manifest import inspect_manifest, iter_batches

    path = tmp_path_factory.mktemp("fuzz") / "manifest.csv"
    path.write_text(text, encoding="utf-8")
    try:
        info = inspect_manifest(str(path))
        rows = sum(batch.num_rows for batch in iter_batches(info))
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert rows >= 0


VERDICT_FIELDS = {"format": st.one_of(st.just(2), VALUES), "branch": st.one_of(st.just("al/x"), VALUES),
                  "compared": st.one_of(st.just("log.jsonl"), VALUES), "against": st.one_of(st.just("log.jsonl"), VALUES),
                  "label_column": st.one_of(st.just("prediction"), VALUES), "representative": st.one_of(st.booleans(), VALUES),
                  "dev_rows": st.one_of(st.integers(0, 9), VALUES), "live_rows": st.one_of(st.integers(0, 9), VALUES),
                  "problems": st.one_of(st.lists(st.text(max_size=8), max_size=2), VALUES),
                  "tests": st.one_of(st.dictionaries(st.text(max_size=4), st.one_of(
                      st.fixed_dictionaries({"effect": st.floats(), "p_value": st.floats(), "drifted": st.booleans()}),
                      VALUES), max_size=2), VALUES),
                  "remedy": st.one_of(st.just("alops data make-dev"), VALUES),
                  "alpha": st.one_of(st.just(0.01), VALUES), "min_effect": st.one_of(st.just(0.1), VALUES)}


@FUZZ
@given(verdict=st.one_of(st.fixed_dictionaries({}, optional=VERDICT_FIELDS), VALUES))
def test_the_drift_verdict_reader_takes_any_json_without_a_traceback(tmp_path_factory, verdict):
    """A verdict either reads (and renders as an issue) or stops with one line naming the field."""
    from alops.report.drift_issue import issue, read

    path = tmp_path_factory.mktemp("fuzz") / "drift.json"
    path.write_text(json.dumps(verdict))
    try:
        read_back = read(str(path))
    except ConfigError as exc:
        assert "\n" not in str(exc) and "alops data check-dev --verdict FILE" in str(exc)
    else:
        title, body = issue(read_back, None)
        assert title and body.startswith("<!-- alops:drift:")
