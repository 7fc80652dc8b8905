"""The project's exception types; the CLI maps them to exit codes."""


class AlopsError(Exception):
    """An operation failed (exit status 1)."""

    exit_code = 1


class ConfigError(AlopsError):
    """A usage or configuration error the user must fix (exit status 2)."""

    exit_code = 2


class ContextError(AlopsError):
    """The branch context cannot be resolved (no git, detached HEAD, ...)."""

    exit_code = 2
