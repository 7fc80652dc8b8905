"""KServe's InferenceService schema, as KServe's Python SDK carries it: the SDK's models are generated from the
OpenAPI schema of KServe's CRDs (with the Kubernetes client's models for the core types), each with its
fields' JSON names and types, and constructors that refuse a missing required field or a value outside an enum.

Only the models are imported (`make` installs the SDK with --no-deps into .venv/kserve-sdk: its model server's
dependencies are not needed to read a manifest)."""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path

SDK = Path(__file__).parents[1] / ".venv" / "kserve-sdk"
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def _models():
    if not (SDK / "kserve").is_dir():
        raise RuntimeError(f"KServe's SDK is not in {SDK}: run `make .venv/.installed` (Makefile) first")
    if str(SDK) not in sys.path:
        sys.path.insert(0, str(SDK))
    for name in ("kserve", "kubernetes"):  # the packages' own __init__ imports the servers: skip it
        if name not in sys.modules or not hasattr(sys.modules[name], "__path__"):
            package = types.ModuleType(name)
            package.__path__ = [str(SDK / name)]
            sys.modules[name] = package
    return importlib.import_module("kserve.models"), importlib.import_module("kubernetes.client.models")


def _check(value, kind: str, path: str, models):
    listed = re.fullmatch(r"[Ll]ist\[(.+)\]", kind)  # the SDK writes list[X], the Kubernetes client List[X]
    if listed:
        assert isinstance(value, list), f"{path}: expected a list"
        return [_check(item, listed.group(1), f"{path}[{i}]", models) for i, item in enumerate(value)]
    mapped = re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", kind)
    if mapped:
        inner = mapped.group(1) or mapped.group(2)
        assert isinstance(value, dict), f"{path}: expected a map"
        return {key: _check(item, inner, f"{path}.{key}", models) for key, item in value.items()}
    if kind in PRIMITIVES:
        assert isinstance(value, PRIMITIVES[kind]) and not (kind != "bool" and isinstance(value, bool)), \
            f"{path}: expected {kind}, got {value!r}"
        return value
    model = getattr(models[0], kind, None) or getattr(models[1], kind)
    assert isinstance(value, dict), f"{path}: expected an object ({kind})"
    attribute = {json_name: name for name, json_name in model.attribute_map.items()}
    unknown = sorted(set(value) - set(attribute))
    assert not unknown, f"{path}: {kind} has no field {unknown[0]!r}"
    fields = {attribute[key]: _check(item, model.openapi_types[attribute[key]], f"{path}.{key}", models)
              for key, item in value.items()}
    return model(**fields)  # refuses a missing required field or a value outside an enum (ValueError)


def validate_inference_service(manifest: dict) -> None:
    """AssertionError or ValueError naming the first field that KServe's schema refuses."""
    assert manifest.get("apiVersion") == "serving.kserve.io/v1beta1" and manifest.get("kind") == "InferenceService"
    _check(manifest, "V1beta1InferenceService", "$", _models())
