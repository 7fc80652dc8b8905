"""The selection record: what `alops query select` and `merge` write and `alops labels export` reads.

One typed record for every way a selection is made (streamed, in memory, scored by a model, merged from shards),
checked by shape when read back, so a hand-edited or foreign file stops with one line naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from alops.core.errors import ConfigError

SCHEMA = 1


@dataclass
class Selection:
    strategy: str
    k: int
    seed: int
    pool: str
    pool_rows: int
    pool_digest: str
    indices: list[int]
    scores: list[float | None]
    rows: list[int]  # [start, stop) of the pool rows this selection scored
    shard: str | None = None  # "i/n", or None for the whole pool
    model: str | None = None  # the model that scored the pool in the same pass (--model)
    model_digest: str | None = None
    commit: str | None = None  # the commit whose model scored the pool
    data_version: str | None = None
    sample_ids: list[str] | None = None  # with --ids: the sample of each index
    skipped_labeled: int | None = None  # with --skip-labeled: pool rows labeled since they were scored
    schema: int = SCHEMA

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, path: str) -> Selection:
        """The selection in `path`; ConfigError naming the file and the field when it is not one."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a selection file ({exc})") from None
        if not isinstance(data, dict) or "indices" not in data:
            raise ConfigError(f"{path}: not a selection file written by `alops query`")
        _check(path, data)
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


def _check(path: str, data: dict) -> None:
    def wrong(field: str, expected: str):
        return ConfigError(f"{path}: {field} must be {expected}; write the file again with `alops query select`")

    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for field in ("k", "seed", "pool_rows"):
        if not whole(data.get(field)):
            raise wrong(field, "a whole number")
    for field in ("strategy", "pool", "pool_digest"):
        if not isinstance(data.get(field), str):
            raise wrong(field, "text")
    indices, scores = data["indices"], data.get("scores")
    if not isinstance(indices, list) or not all(whole(i) and 0 <= i < data["pool_rows"] for i in indices):
        raise wrong("indices", f"a list of pool rows (0 to {data['pool_rows'] - 1})")
    if not isinstance(scores, list) or len(scores) != len(indices) or not all(
            s is None or (isinstance(s, (int, float)) and not isinstance(s, bool)) for s in scores):
        raise wrong("scores", "a list of numbers, one per index")
    rows = data.get("rows")
    if not (isinstance(rows, list) and len(rows) == 2 and all(whole(r) for r in rows)):
        raise wrong("rows", "[start, stop]")
    ids = data.get("sample_ids")
    if ids is not None and not (isinstance(ids, list) and len(ids) == len(indices) and all(isinstance(i, str) for i in ids)):
        raise wrong("sample_ids", "a list of sample ids, one per index")
    for field in ("shard", "model", "model_digest", "commit", "data_version"):
        if data.get(field) is not None and not isinstance(data[field], str):
            raise wrong(field, "text or null")
