"""Refuse a bad slug, forge or class list before anything is written (the logic lives in alops.setup.scaffold)."""

import sys

from alops.core.errors import AlopsError
from alops.setup.scaffold import check_options

try:
    check_options({{ cookiecutter.project_slug | tojson }}, {{ cookiecutter.forge | tojson }},
                  {{ cookiecutter.classes | tojson }})
except AlopsError as exc:
    print(f"alops: error: {exc}", file=sys.stderr)
    sys.exit(1)
