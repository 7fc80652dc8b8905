"""Keep the chosen forge's CI file and example, then git init, dvc init and the DVC remote (alops.setup.scaffold)."""

import os
import sys

from alops.core.errors import AlopsError
from alops.setup.scaffold import finish_project

try:
    finish_project(os.getcwd(), {{ cookiecutter.forge | tojson }}, {{ cookiecutter.example | tojson }},
                   {{ cookiecutter.dvc_remote | tojson }})
except AlopsError as exc:
    print(f"alops: error: {exc}", file=sys.stderr)
    sys.exit(1)
