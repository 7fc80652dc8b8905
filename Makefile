# Two set-up commands: `make test` (and, with the scaffold, `make demo`). Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Label Studio (for the labeling hand-off tests) pins its own dependencies: it gets a venv of its own
LS_STAMP := .venv-ls/.installed
# MLServer with its MLflow runtime (what KServe runs for `modelFormat: mlflow`), for the kserve target's smoke test
MLSERVER_STAMP := .venv-mlserver/.installed

.PHONY: test check demo bench lint mutate clean

$(STAMP): setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build of torch; any other spec downloads a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	# KServe's SDK models (the InferenceService schema) for the manifest tests, without its model server's dependencies
	$(PY) -m pip install --quiet --no-deps --upgrade --target $(VENV)/kserve-sdk kserve==0.21.0 kubernetes==37.0.2
	touch $(STAMP)

# gitlab-ci-local runs the GitLab component's pipelines in the tests (4.64.1 is the last release for Node 20);
# it copies job folders with rsync
TOOLS_STAMP := .tools/.installed
$(TOOLS_STAMP): Makefile
	command -v rsync >/dev/null || { apt-get update -qq && apt-get install -y -qq rsync; }
	npm install --no-audit --no-fund --silent --prefix .tools gitlab-ci-local@4.64.1
	touch $(TOOLS_STAMP)

$(LS_STAMP): Makefile
	$(PYTHON) -m venv .venv-ls
	.venv-ls/bin/python -m pip install --quiet --upgrade pip
	# Label Studio 1.23 passes options sentry-sdk 3 no longer takes (it fails to start with sentry-sdk 3.0)
	.venv-ls/bin/python -m pip install --quiet 'label-studio>=1.20,<2' 'sentry-sdk<3'
	touch $(LS_STAMP)

$(MLSERVER_STAMP): Makefile
	$(PYTHON) -m venv .venv-mlserver
	.venv-mlserver/bin/python -m pip install --quiet --upgrade pip
	.venv-mlserver/bin/python -m pip install --quiet torch==2.13.0 'mlserver>=1.6,<2' 'mlserver-mlflow>=1.6,<2'
	touch $(MLSERVER_STAMP)

# two workers, each test file on one of them (a file's module fixtures and servers stay in one process)
test: $(STAMP) $(LS_STAMP) $(TOOLS_STAMP) $(MLSERVER_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

# the inner loop: the tests that start no servers, CI runners, pip or the demo
check: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 --dist loadfile

# the whole flow on the digits example in a temporary folder, with its timing
demo: $(STAMP)
	$(VENV)/bin/alops demo

# the templates' static checks (also part of `make test`)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) templates/compose.py --check
	$(PY) docs/generate.py --check
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-actions templates/github/*/action.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml
	$(VENV)/bin/zizmor --offline --no-progress .github templates/github
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/actionlint .github/workflows/*.yml
	$(PY) templates/check_scripts.py

# seeded mutations of the gate, merge, strategies, import validation, scrubber and writers against the fast
# tests (not part of `make test`); prints the mutation score
mutate: $(STAMP)
	$(PY) tests/mutate.py

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@status=0; for bench in benchmarks/bench_*.py; do echo "== $$bench"; $(PY) $$bench || status=1; done; exit $$status

clean:
	rm -rf $(VENV) .venv-ls .venv-mlserver .tools runner_tools/*.egg-info .pytest_cache
