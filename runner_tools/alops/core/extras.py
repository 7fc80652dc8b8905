"""Optional dependencies: import one, or say in one line which extra installs it."""

from __future__ import annotations

import importlib

from alops.core.errors import ConfigError


def require(module: str, extra: str, needed_for: str):
    """The imported `module`; a ConfigError naming `alops[extra]` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{needed_for} needs {module.split('.')[0]}, which is not installed: "
                          f"pip install 'alops[{extra}]'") from None
