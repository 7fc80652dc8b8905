"""The data a branch carries: DVC pull and push, manifests and row files, dev datasets and their fidelity, drift
tests, the pool, the production intake and the commits that record a data change.

May import: alops.core."""
