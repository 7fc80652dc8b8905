"""Releases: the gate, the registry's aliases, rescoring both models, deploy targets and rollback.

May import: alops.core, alops.data, alops.al, alops.serve, alops.runs, alops.forge."""
