"""The project a command works on, derived once: root, configuration, branch context, datasets, tracking, DVC.

A command opens one `Project` and hands it to the library; nothing below re-reads alops.yaml, re-resolves
the branch or re-opens DVC's repository. The names of the tags alops writes on tracked runs live here too.
"""

from __future__ import annotations

import os
import re
from functools import cached_property

from alops.core.config import PROJECT_NAME, ProjectConfig, load_config
from alops.core.errors import ConfigError

# Tags on tracked runs (MLflow): written by `alops run`, read by report, release and select-best.
TAG_COMMIT = "git.commit"
TAG_BRANCH = "git.branch"
TAG_KIND = "alops.kind"
TAG_DATASET = "alops.dataset"
TAG_DATA_VERSION = "alops.data_version"
TAG_RUNNER = "alops.runner"
TAG_DEVICE = "alops.device"
TAG_CPU_FALLBACK = "alops.cpu_fallback"  # "true": the profile asked for a GPU and the run used the CPU (allow-cpu)
TAG_DIRTY = "alops.dirty"  # "false", or the tracked files that differed from the commit when the run started
TAG_DIRTY_DIFF = "alops.dirty_diff"  # a digest of those differences (git diff HEAD), when there were any
TAG_LOCK = "alops.dvc_lock"
TAG_LABELED = "alops.labeled"
TAG_RUN_KEY = "alops.run_key"
# Tags on registered model versions
TAG_PREVIOUS_CHAMPION = "alops.previous_champion"
TAG_ROLLED_BACK = "alops.rolled_back"

LOCAL_STORE = "mlflow.db"


def device_of(device: str | None, cpu_fallback: bool) -> str | None:
    """A run's device as a reviewer reads it (TAG_DEVICE, TAG_CPU_FALLBACK): a CPU fallback named as one."""
    return f"{device} (CPU fallback: the profile asks for a GPU)" if device and cpu_fallback else device


def find_dvc_root(start: str | None = None) -> str:
    """The folder holding `.dvc/`, from `start` upwards."""
    folder = os.path.realpath(start or os.getcwd())
    git_root = None
    while True:
        if os.path.isdir(os.path.join(folder, ".dvc")):
            return folder
        if git_root is None and os.path.exists(os.path.join(folder, ".git")):
            git_root = folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if git_root is None:
        raise ConfigError(f"not inside a project: no alops.yaml, .dvc or .git above {os.getcwd() if start is None else start}; "
                          "cd into your project's folder (or create one with `alops new NAME`)")
    raise ConfigError(f"not inside a DVC repository (no .dvc folder in {git_root} or above): run `alops init` "
                      "there to adopt alops, or `dvc init` in the project root")


def project_name(root: str, configured: str | None = None) -> str:
    """alops.yaml's `project`, else CI's project name, else the origin remote's repository name, else the
    folder's name: a clone in another folder tracks into the same experiments as CI."""
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    return (configured or os.environ.get("CI_PROJECT_NAME") or repository.rpartition("/")[2] or _remote_name(root)
            or os.path.basename(os.path.abspath(root)))


def _remote_name(root: str) -> str | None:
    """The repository name in the origin remote's URL (https://host/team/digits.git, git@host:team/digits)."""
    from alops.core.git import git

    found = git(root, "remote", "get-url", "origin", check=False)
    url = found.stdout.strip() if found.returncode == 0 else ""
    if not re.match(r"^([a-z][a-z0-9+.-]*://|[^/@:]+@[^/:]+:)", url):  # a URL, not a local path
        return None
    name = url.rstrip("/").rpartition("/")[2].rpartition(":")[2].removesuffix(".git")
    return name if re.fullmatch(PROJECT_NAME, name) else None


def experiment_name(project: str, kind: str) -> str:
    """The tracking experiment of one branch kind: `<project>/<kind>`."""
    return f"{project}/{kind}"


class Project:
    """One project, opened once per command. Close it (or use `with`) to release DVC's repository."""

    def __init__(self, root: str, config: ProjectConfig, branch: str | None = None, profile=None,
                 tracking_uri: str | None = None):
        self.root = os.path.abspath(root)
        self.config = config
        self._branch = branch
        self._profile = profile
        self._tracking_uri = tracking_uri
        self._dvc = None

    @classmethod
    def open(cls, start: str | None = None, branch: str | None = None, profile=None,
             tracking_uri: str | None = None) -> Project:
        """The project around `start` (default: the current folder): alops.yaml, else the DVC root. `branch`
        names the branch; `profile` (a branches.Profile) runs its checked-out commit as that profile says
        instead of its own (alops baseline: the target's commit run as the experiment runs); `tracking_uri`
        tracks it elsewhere than its own store (alops baseline: the project's, not a new one in the clone)."""
        config = load_config(start)
        return cls(config.root or find_dvc_root(start), config, branch, profile, tracking_uri)

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._dvc is not None:
            self._dvc.close()
            self._dvc = None

    # --- what the branch means -------------------------------------------------------------------
    @cached_property
    def context(self):
        """The resolved branch context (CI variables, else local git)."""
        from dataclasses import replace

        from alops.core.branches import resolve_context
        from alops.core.git import git

        context = resolve_context(self.config.branches, cwd=self.root, branch=self._branch)
        if self._profile is None:
            return context
        return replace(context, commit=git(self.root, "rev-parse", "HEAD").stdout.strip(), profile=self._profile)

    @cached_property
    def name(self) -> str:
        return project_name(self.root, self.config.project)

    def experiment(self, kind: str | None = None) -> str:
        return experiment_name(self.name, kind or self.context.kind)

    def target_branch(self, explicit: str | None = None) -> str:
        """The branch to compare with / merge into: `explicit`, else the MR's target, else the default branch."""
        if explicit:
            return explicit
        if self.context.merge_request:
            return self.context.merge_request.target_branch
        return self.context.default_branch

    # --- data ------------------------------------------------------------------------------------
    def dataset_folder(self, dataset: str) -> str:
        """Absolute folder of the `dev` or `full` dataset."""
        data = self.config.data
        return os.path.join(self.root, data.dev if dataset == "dev" else data.full)

    def manifest(self, dataset: str) -> str:
        return os.path.join(self.dataset_folder(dataset), self.config.data.manifest)

    @property
    def dataset(self) -> str:
        """The dataset the branch profile names."""
        return self.context.profile.dataset

    @property
    def dvc(self):
        """DVC's repository, opened on first use; every remote is read with `verify = true`."""
        if self._dvc is None:
            from dvc.config import Config
            from dvc.repo import Repo

            remotes = Config(os.path.join(self.root, ".dvc"))["remote"]  # the config files only, no repository
            self._dvc = Repo(self.root, config={"remote": {name: {"verify": True} for name in remotes}})
        return self._dvc

    @cached_property
    def has_remote(self) -> bool:
        return bool(self.dvc.config["core"].get("remote"))

    @cached_property
    def pipeline(self) -> dict:
        """dvc.yaml, parsed once."""
        import yaml

        path = os.path.join(self.root, "dvc.yaml")
        if not os.path.exists(path):
            raise ConfigError("no dvc.yaml here: define the pipeline's stages (load, process, train, evaluate) in dvc.yaml")
        with open(path, encoding="utf-8") as handle:
            try:
                document = yaml.safe_load(handle) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"dvc.yaml: not valid YAML ({' '.join(str(exc).split())})") from None
            except UnicodeDecodeError:
                raise ConfigError("dvc.yaml: not UTF-8 text: save it as UTF-8") from None
        if not isinstance(document, dict):
            raise ConfigError("dvc.yaml: expected a mapping with `stages:`")
        stages = document.get("stages") or {}
        if not isinstance(stages, dict) or not all(isinstance(stage, dict) for stage in stages.values()):
            raise ConfigError("dvc.yaml: `stages:` must map each stage's name to its definition (cmd, deps, outs), "
                              "as DVC documents")
        return document

    @property
    def stages(self) -> list[str]:
        return list((self.pipeline.get("stages") or {}).keys())

    # --- tracking --------------------------------------------------------------------------------
    @cached_property
    def tracking_uri(self) -> str:
        """`$MLFLOW_TRACKING_URI`, else a local sqlite store in the project (`mlflow.db`, artifacts in `mlartifacts/`)."""
        return (self._tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                or "sqlite:///" + os.path.join(self.root, LOCAL_STORE))

    @property
    def tracking_store_exists(self) -> bool:
        """Whether there is anything tracked to read: a configured server or the local store."""
        return (bool(self._tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
                or os.path.exists(os.path.join(self.root, LOCAL_STORE)))

    def tracks(self, requested: bool | None = None) -> bool:
        """Whether a run is tracked: as requested, else where the profile tracks or a server is configured."""
        if requested is not None:
            return requested
        return self.context.profile.tracking or bool(os.environ.get("MLFLOW_TRACKING_URI"))

