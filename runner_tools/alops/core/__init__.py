"""The project itself: branch kinds and profiles, `alops.yaml`, `params.yaml` and its schema, the Project object,
errors, extras, git, secrets and the one atomic writer.

May import: nothing of alops but the package root (its version)."""
