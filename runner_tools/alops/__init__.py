"""alops: runner-side tools for the Git flow of active-learning projects."""

__version__ = "0.1.0"
