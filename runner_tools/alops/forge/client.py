"""GitLab (python-gitlab) and GitHub (PyGithub): the sticky report comment, merge requests, releases, issues.

Every write is find-then-update, so a restarted job or a retried request never duplicates anything: the
report comment is recognised by a hidden marker, a merge request by its source branch, a release by its
tag, an open issue by a hidden marker in its description. The clients retry reads and updates on 429/5xx (honouring `Retry-After`); a create is never retried
blindly by the client: on 429/5xx the whole find-then-write runs again, and finds what the server may
already have applied. Tokens come from the environment and are scrubbed from every message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from alops.core.errors import AlopsError, ConfigError
from alops.core.secrets import scrub

REPORT_MARKER = "<!-- alops:report -->"
WRITE_ATTEMPTS = 4
MAX_WAIT_S = 30.0
TRANSIENT = {429, 500, 502, 503, 504}

PERMISSIONS = {
    "gitlab": {
        "comment": "a token with the `api` scope and at least the Reporter role (GITLAB_TOKEN; CI_JOB_TOKEN cannot write notes)",
        "merge request": "a token with the `api` scope and at least the Developer role",
        "release": "a token with the `api` scope and the Developer role (Maintainer for protected tags)",
        "upload": "a token with the `api` scope",
        "issue": "a token with the `api` scope and at least the Reporter role",
    },
    "github": {
        "comment": "GITHUB_TOKEN with `pull-requests: write` (or `issues: write`)",
        "merge request": "GITHUB_TOKEN with `pull-requests: write` and `contents: read`",
        "release": "GITHUB_TOKEN with `contents: write`",
        "upload": "GITHUB_TOKEN with `contents: read`",
        "issue": "GITHUB_TOKEN with `issues: write` (in alops' workflow: the issues-token secret, Issues read and write)",
    },
}


class ForgeError(AlopsError):
    """The forge refused or failed a request."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Outcome:
    """What a write did: `created`, `updated`, `closed` (or `missing`: nothing to update), and where."""

    action: str
    url: str | None
    number: str | None = None


def idempotent_write(find: Callable, update: Callable, create: Callable, attempts: int = WRITE_ATTEMPTS,
                     sleep=time.sleep) -> Outcome:
    """Update what `find` returns, else create; on a transient failure look again before writing again."""
    for attempt in range(attempts):
        existing = find()
        if existing is not None:
            return update(existing)
        try:
            return create()
        except ForgeError as exc:
            if exc.status not in TRANSIENT or attempt == attempts - 1:
                raise
            sleep(min(MAX_WAIT_S, exc.retry_after if exc.retry_after is not None else 2 ** attempt))
    raise AssertionError("unreachable")


class GitLabForge:
    """A GitLab project through python-gitlab (REST v4)."""

    name = "gitlab"

    def __init__(self, url: str, project: str, token: str, job_token: bool = False, project_url: str | None = None):
        import gitlab

        self._secrets = (token,)
        self._gl = (gitlab.Gitlab(url, job_token=token, retry_transient_errors=True, timeout=30) if job_token else
                    gitlab.Gitlab(url, private_token=token, retry_transient_errors=True, timeout=30))
        self._project = self._gl.projects.get(project, lazy=True)
        self.server_url = url.rstrip("/")
        self.web_url = (project_url or f"{self.server_url}/{project}").rstrip("/")

    def _call(self, what: str, function: Callable, *args, **kwargs):
        import gitlab
        import requests

        try:
            return function(*args, **kwargs)
        except gitlab.exceptions.GitlabError as exc:
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            raise _http_error(self.name, what, exc.response_code, str(exc.error_message), self._secrets,
                              headers.get("Retry-After")) from None
        except requests.RequestException as exc:
            raise ForgeError(scrub(f"GitLab {what}: cannot reach {self.server_url}: {type(exc).__name__}", self._secrets),
                             status=503) from None

    def find_merge_request(self, source: str, target: str | None = None):
        query = {"source_branch": source, "state": "opened", "get_all": True}
        if target:
            query["target_branch"] = target
        found = self._call("merge request", self._project.mergerequests.list, **query)
        return found[0] if found else None

    def post_comment(self, number: str, body: str) -> Outcome:
        merge_request = self._project.mergerequests.get(number, lazy=True)

        def find():
            notes = self._call("comment", merge_request.notes.list, get_all=True)
            return next((n for n in notes if REPORT_MARKER in (n.body or "")), None)

        def update(note):
            note.body = body
            self._call("comment", note.save)
            return Outcome("updated", f"{self.web_url}/-/merge_requests/{number}#note_{note.id}", str(number))

        def create():
            note = self._call("comment", merge_request.notes.create, {"body": body}, retry_transient_errors=False)
            return Outcome("created", f"{self.web_url}/-/merge_requests/{number}#note_{note.id}", str(number))

        return idempotent_write(find, update, create)

    def upsert_merge_request(self, source: str, target: str, title: str, description: str,
                             labels: tuple[str, ...] = (), draft: bool = False) -> Outcome:
        title = f"Draft: {title}" if draft and not title.startswith("Draft:") else title

        def update(found):
            found.title, found.description = title, description
            if labels:
                found.labels = sorted(set(found.labels or []) | set(labels))
            self._call("merge request", found.save)
            return Outcome("updated", found.web_url, str(found.iid))

        def create():
            data = {"source_branch": source, "target_branch": target, "title": title, "description": description,
                    "remove_source_branch": False}
            if labels:
                data["labels"] = ",".join(labels)
            made = self._call("merge request", self._project.mergerequests.create, data, retry_transient_errors=False)
            return Outcome("created", made.web_url, str(made.iid))

        return idempotent_write(lambda: self.find_merge_request(source, target), update, create)

    def upload_image(self, path: str) -> str | None:
        uploaded = self._call("upload", self._project.upload, os.path.basename(path), filepath=path)
        return uploaded["markdown"]

    def upsert_issue(self, marker: str, title: str, description: str) -> Outcome:
        """Create or update the one open issue whose description holds `marker`."""
        def find():
            issues = self._call("issue", self._project.issues.list, state="opened", search=marker, get_all=True)
            return next((i for i in issues if marker in (i.description or "")), None)

        def update(found):
            found.title, found.description = title, description
            self._call("issue", found.save)
            return Outcome("updated", found.web_url, str(found.iid))

        def create():
            data = {"title": title, "description": description}
            made = self._call("issue", self._project.issues.create, data, retry_transient_errors=False)
            return Outcome("created", made.web_url, str(made.iid))

        return idempotent_write(find, update, create)

    def close_issue(self, marker: str, note: str) -> Outcome | None:
        """Comment `note` on the open issue whose description holds `marker` and close it; None when none is open."""
        issues = self._call("issue", self._project.issues.list, state="opened", search=marker, get_all=True)
        found = next((i for i in issues if marker in (i.description or "")), None)
        if found is None:
            return None
        self._call("issue", found.notes.create, {"body": note})
        found.state_event = "close"
        self._call("issue", found.save)
        return Outcome("closed", found.web_url, str(found.iid))

    def publish_release(self, tag: str, name: str, description: str, commit: str) -> Outcome:
        import gitlab

        def find():
            try:
                return self._project.releases.get(tag)
            except gitlab.exceptions.GitlabGetError as exc:
                if exc.response_code == 404:
                    return None
                raise _http_error(self.name, "release", exc.response_code, str(exc.error_message), self._secrets) from None

        def update(release):
            release.name, release.description = name, description
            self._call("release", release.save)
            return Outcome("updated", f"{self.web_url}/-/releases/{tag}")

        def create():
            data = {"tag_name": tag, "name": name, "description": description, "ref": commit}
            self._call("release", self._project.releases.create, data, retry_transient_errors=False)
            return Outcome("created", f"{self.web_url}/-/releases/{tag}")

        return idempotent_write(find, update, create)

    def mark_release(self, tag: str, note: str) -> Outcome:
        """Prefix the release of `tag` with `note` (once); "missing" when the forge has no such release."""
        import gitlab

        try:
            release = self._project.releases.get(tag)
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code == 404:
                return Outcome("missing", None)
            raise _http_error(self.name, "release", exc.response_code, str(exc.error_message), self._secrets) from None
        name, description = marked(release.name or tag, release.description or "", note)
        if (name, description) != (release.name, release.description):
            release.name, release.description = name, description
            self._call("release", release.save)
        return Outcome("updated", f"{self.web_url}/-/releases/{tag}")


class GitHubForge:
    """A GitHub repository through PyGithub (REST v3)."""

    name = "github"

    def __init__(self, api_url: str, repository: str, token: str, server_url: str | None = None):
        from github import Auth, Github, GithubRetry

        self._secrets = (token,)
        # POST is left out on purpose: a create is retried by `idempotent_write`, after looking again
        retry = GithubRetry(total=4, backoff_factor=0.5, status_forcelist=[429, *range(500, 600)],
                            allowed_methods={"GET", "PATCH", "PUT", "DELETE", "HEAD"}, secondary_rate_wait=5)
        self._github = Github(auth=Auth.Token(token), base_url=api_url.rstrip("/"), retry=retry, timeout=30)
        self._repository = repository
        self._repo = self._github.get_repo(repository, lazy=True)
        self.web_url = f"{(server_url or 'https://github.com').rstrip('/')}/{repository}"

    def _call(self, what: str, function: Callable, *args, **kwargs):
        import requests
        from github import GithubException

        try:
            return function(*args, **kwargs)
        except GithubException as exc:
            message = (exc.data or {}).get("message") if isinstance(exc.data, dict) else str(exc.data or "")
            headers = exc.headers or {}
            raise _http_error(self.name, what, exc.status, message or "", self._secrets,
                              headers.get("retry-after") or headers.get("Retry-After")) from None
        except requests.RequestException as exc:
            raise ForgeError(scrub(f"GitHub {what}: cannot reach the API: {type(exc).__name__}", self._secrets),
                             status=503) from None

    def find_merge_request(self, source: str, target: str | None = None):
        owner = self._repository.split("/")[0]
        query = {"state": "open", "head": f"{owner}:{source}"}
        if target:
            query["base"] = target
        found = self._call("merge request", lambda: list(self._repo.get_pulls(**query)))
        return found[0] if found else None

    def post_comment(self, number: str, body: str) -> Outcome:
        issue = self._call("comment", self._repo.get_issue, int(number))

        def find():
            comments = self._call("comment", lambda: list(issue.get_comments()))
            return next((c for c in comments if REPORT_MARKER in (c.body or "")), None)

        def update(comment):
            self._call("comment", comment.edit, body)
            return Outcome("updated", comment.html_url, str(number))

        def create():
            made = self._call("comment", issue.create_comment, body)
            return Outcome("created", made.html_url, str(number))

        return idempotent_write(find, update, create)

    def upsert_merge_request(self, source: str, target: str, title: str, description: str,
                             labels: tuple[str, ...] = (), draft: bool = False) -> Outcome:
        def update(found):
            self._call("merge request", found.edit, title=title, body=description)
            if labels:
                self._call("merge request", found.add_to_labels, *labels)
            return Outcome("updated", found.html_url, str(found.number))

        def create():
            made = self._call("merge request", self._repo.create_pull, base=target, head=source, title=title,
                              body=description, draft=draft)
            if labels:
                self._call("merge request", made.add_to_labels, *labels)
            return Outcome("created", made.html_url, str(made.number))

        return idempotent_write(lambda: self.find_merge_request(source, target), update, create)

    def upload_image(self, path: str) -> str | None:
        return None  # the API has no image upload: the report links the run's artifacts instead

    def upsert_issue(self, marker: str, title: str, description: str) -> Outcome:
        """Create or update the one open issue whose body holds `marker` (pull requests are not issues here)."""
        def find():
            issues = self._call("issue", lambda: list(self._repo.get_issues(state="open")))
            return next((i for i in issues if i.pull_request is None and marker in (i.body or "")), None)

        def update(found):
            self._call("issue", found.edit, title=title, body=description)
            return Outcome("updated", found.html_url, str(found.number))

        def create():
            made = self._call("issue", self._repo.create_issue, title=title, body=description)
            return Outcome("created", made.html_url, str(made.number))

        return idempotent_write(find, update, create)

    def close_issue(self, marker: str, note: str) -> Outcome | None:
        """Comment `note` on the open issue whose body holds `marker` and close it; None when none is open."""
        issues = self._call("issue", lambda: list(self._repo.get_issues(state="open")))
        found = next((i for i in issues if i.pull_request is None and marker in (i.body or "")), None)
        if found is None:
            return None
        self._call("issue", found.create_comment, note)
        self._call("issue", found.edit, state="closed")
        return Outcome("closed", found.html_url, str(found.number))

    def publish_release(self, tag: str, name: str, description: str, commit: str) -> Outcome:
        def find():
            try:
                return self._call("release", self._repo.get_release, tag)
            except ForgeError as exc:
                if exc.status == 404:
                    return None
                raise

        def update(release):
            made = self._call("release", release.update_release, name=name, message=description)
            return Outcome("updated", made.html_url)

        def create():
            made = self._call("release", self._repo.create_git_release, tag, name, description,
                              target_commitish=commit)
            return Outcome("created", made.html_url)

        return idempotent_write(find, update, create)

    def mark_release(self, tag: str, note: str) -> Outcome:
        """Prefix the release of `tag` with `note` (once); "missing" when the forge has no such release."""
        try:
            release = self._call("release", self._repo.get_release, tag)
        except ForgeError as exc:
            if exc.status == 404:
                return Outcome("missing", None)
            raise
        name, description = marked(release.title or tag, release.body or "", note)
        if (name, description) != (release.title, release.body):
            release = self._call("release", release.update_release, name=name, message=description)
        return Outcome("updated", release.html_url)


ROLLED_BACK = "[rolled back] "


def marked(name: str, description: str, note: str) -> tuple[str, str]:
    """A release's name and notes marked rolled back: the name prefixed, the note above the notes; once."""
    if name.startswith(ROLLED_BACK):
        return name, description
    return ROLLED_BACK + name, f"**{note}**\n\n{description}".rstrip() + "\n"


def _http_error(forge: str, what: str, status: int | None, message: str, secrets: tuple[str, ...],
                retry_after: str | None = None) -> ForgeError:
    label = "GitLab" if forge == "gitlab" else "GitHub"
    variable = "GITLAB_TOKEN" if forge == "gitlab" else "GITHUB_TOKEN"
    if status == 401:
        text = f"{label} rejected the token (401: expired, revoked or wrong): set {variable} to a valid token"
    elif status == 403:
        text = f"{label} refused the {what} (403): the token lacks permission; it needs {PERMISSIONS[forge][what]}"
    elif status == 404:
        text = f"{label} {what}: not found (404): check the project and that the token can see it"
    else:
        text = f"{label} {what} failed ({status}): {' '.join(str(message).split()) or 'no message'}"
    try:
        wait = float(retry_after) if retry_after is not None else None
    except ValueError:
        wait = None
    return ForgeError(scrub(text, secrets), status=status, retry_after=wait)


def connect(context):
    """The forge of the CI context, with its token from the environment; a clear error when there is none."""
    env = os.environ
    if context.forge == "gitlab":
        url = env.get("CI_SERVER_URL")
        project = env.get("CI_PROJECT_ID") or env.get("CI_PROJECT_PATH")
        if not url or not project:
            raise ConfigError("CI_SERVER_URL and CI_PROJECT_ID are not set: posting to GitLab runs in a GitLab CI job")
        page = env.get("CI_PROJECT_URL")
        if env.get("GITLAB_TOKEN"):
            return GitLabForge(url, project, env["GITLAB_TOKEN"], project_url=page)
        if env.get("CI_JOB_TOKEN"):
            return GitLabForge(url, project, env["CI_JOB_TOKEN"], job_token=True, project_url=page)
        raise ConfigError("no GitLab token: add GITLAB_TOKEN (a project access token with the api scope) as a masked CI/CD variable")
    if context.forge == "github":
        repository = env.get("GITHUB_REPOSITORY")
        if not repository:
            raise ConfigError("GITHUB_REPOSITORY is not set: posting to GitHub runs in a GitHub Actions job")
        if not env.get("GITHUB_TOKEN"):
            raise ConfigError("no GitHub token: pass `GITHUB_TOKEN: ${{ github.token }}` in the step's env")
        return GitHubForge(env.get("GITHUB_API_URL") or "https://api.github.com", repository, env["GITHUB_TOKEN"],
                           env.get("GITHUB_SERVER_URL"))
    raise ConfigError("no forge here: posting needs a GitLab CI or GitHub Actions job (CI variables); "
                      "without --post the report is written to a file")
