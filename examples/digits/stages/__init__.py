"""The pipeline's stages: each a configurable function plus a `main()` that reads params.yaml (dvc.yaml runs them)."""
