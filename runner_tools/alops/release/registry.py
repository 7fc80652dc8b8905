"""The registry's names: the aliases that carry a model's state and the run a release registers.

`champion` is the version serving; `challenger` a gated version awaiting its deploy step (alops.release.deploy).
"""

from __future__ import annotations

import os
import re

from alops.core.errors import AlopsError, ConfigError
from alops.core.project import TAG_LOCK
from alops.runs.pipeline import lock_digest
from alops.runs.tracking import find_runs

CHAMPION = "champion"
CHALLENGER = "challenger"


def candidate_run(client, uri: str, root: str, project: str, commit: str | None, run_id: str | None):
    """--run-id; else the latest tracked run of this commit; else of the same pipeline state (dvc.lock), which
    is what a release branch cut from an already-trained commit has (its `alops run` was a no-op)."""
    if run_id:
        if not re.fullmatch(r"[0-9a-f]{32}", run_id):
            raise ConfigError(f"--run-id {run_id!r} is not an MLflow run id (32 hex digits)")
        return client.get_run(run_id)
    runs = find_runs(uri, project, commit=commit, limit=1) if commit else []
    if not runs and os.path.isfile(os.path.join(root, "dvc.lock")):
        runs = find_runs(uri, project, tags={TAG_LOCK: lock_digest(root)}, limit=1)
    if not runs:
        raise AlopsError(f"no finished tracked run for commit {(commit or '?')[:12]} or its dvc.lock: run `alops run` "
                         "on this branch first")
    return runs[0]
