"""Running the pipeline for a branch: DVC stages, metrics, MLflow tracking and its outage buffer, seeds, noise
intervals and baselines.

May import: alops.core, alops.data."""
