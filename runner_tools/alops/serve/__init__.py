"""The endpoint and what it sees: the served model, prediction capture, the KServe logger sink, and the dev
dataset as a model predicts it (the drift check's model side).

May import: alops.core, alops.data, alops.al."""
