"""The one scrubber: tokens from the environment and credentials inside URLs never reach a message or a file."""

from __future__ import annotations

import os
import re

# Variables whose values are credentials, wherever they appear in text alops shows or writes.
SECRET_VARIABLES = (
    "GITLAB_TOKEN", "CI_JOB_TOKEN", "GITHUB_TOKEN", "LABEL_STUDIO_API_KEY",
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
)
MASK = "***"
# scheme://user:password@host or scheme://token@host: the user-info part of a URL
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")


def redact_url(uri: str) -> str:
    """`uri` without its user-info (`https://***@host/...`); other text unchanged."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", uri)


def scrub(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` with every secret value from the environment (and `extra`) and every URL credential masked."""
    values = [os.environ.get(name, "") for name in SECRET_VARIABLES] + list(extra)
    for value in sorted((v for v in values if v and len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, MASK)
    return redact_url(text)
