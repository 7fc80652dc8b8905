"""What the stages share: params, the dataset folder, the device."""

from __future__ import annotations

import os

import yaml


def params(path: str = "params.yaml") -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def dataset_folder(settings: dict) -> str:
    """data/dev or data/full: `alops run` sets `dataset` from the branch kind's profile."""
    return os.path.join("data", settings["dataset"])


def device() -> str:
    """The device `alops run` chose for this branch (ALOPS_DEVICE), else the CPU."""
    return os.environ.get("ALOPS_DEVICE", "cpu")
