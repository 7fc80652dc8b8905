"""A small Label Studio REST client: find or create a project, add tasks once, fetch the export.

The token comes from `LABEL_STUDIO_API_KEY`: a personal access token (a JWT, exchanged for an access token)
or a legacy token. It never appears in output or error messages.
"""

from __future__ import annotations

import os

from alops.core.errors import AlopsError, ConfigError

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
TIMEOUT_S = 60


class LabelStudio:
    def __init__(self, url: str, token: str | None = None):
        import requests

        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise ConfigError(f"set {TOKEN_ENV} to a Label Studio access token to talk to {url}")
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if token.count(".") == 2:  # a personal access token: exchange it for a short-lived access token
            access = self._call("POST", "/api/token/refresh", json={"refresh": token}, auth=False)["access"]
            self.session.headers["Authorization"] = f"Bearer {access}"
        else:
            self.session.headers["Authorization"] = f"Token {token}"

    def _call(self, method: str, path: str, auth: bool = True, expect: type | tuple = (dict, list), **kwargs):
        """Label Studio's JSON answer, of the `expect`ed shape; any other answer is one line."""
        import requests

        try:
            session = self.session if auth else requests
            response = session.request(method, self.url + path, timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise AlopsError(f"Label Studio at {self.url} is unreachable ({type(exc).__name__})") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = (body.get("detail") or body.get("validation_errors")) if isinstance(body, dict) else body
            except ValueError:
                detail = response.reason
            raise AlopsError(f"Label Studio {method} {path}: HTTP {response.status_code}: {detail}")
        if not response.content:
            return None
        try:
            answer = response.json()
        except ValueError:
            raise AlopsError(f"Label Studio {method} {path}: the answer is not JSON (a login or proxy page?): check "
                             "that the URL is Label Studio's own") from None
        if not isinstance(answer, expect):
            raise AlopsError(f"Label Studio {method} {path}: an answer of an unexpected shape "
                             f"({type(answer).__name__}): check the URL and that Label Studio is 1.20 or newer")
        return answer

    def _records(self, answer, key: str, what: str) -> list[dict]:
        """The objects of a paged (`{key: [...]}`) or plain list answer."""
        records = answer.get(key, []) if isinstance(answer, dict) else answer
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise AlopsError(f"Label Studio's {what} are not a list of objects: check that Label Studio is 1.20 or newer")
        return records

    @staticmethod
    def _project_id(project) -> int:
        if not isinstance(project, dict) or not isinstance(project.get("id"), int) or isinstance(project["id"], bool):
            raise AlopsError("Label Studio answered a project without an integer id: check that Label Studio is 1.20 "
                             "or newer")
        return project["id"]

    def project(self, title: str, label_config: str | None = None) -> int:
        """The id of the project named `title`; created with `label_config` when given and there is none."""
        found = self._call("GET", "/api/projects", params={"title": title, "page_size": 100})
        for project in self._records(found, "results", "projects"):
            if project.get("title") == title:
                return self._project_id(project)
        if label_config is None:
            raise AlopsError(f"Label Studio has no project {title!r}: create it with `alops labels export --label-studio-url`")
        return self._project_id(self._call("POST", "/api/projects", expect=dict,
                                           json={"title": title, "label_config": label_config}))

    def sample_ids(self, project: int) -> set[str]:
        """The `sample_id`s of the project's tasks."""
        ids: set = set()
        page = 1
        while True:
            data = self._call("GET", "/api/tasks", params={"project": project, "page": page, "page_size": 500})
            tasks = self._records(data, "tasks", "tasks")
            ids.update(str((t.get("data") or {}).get("sample_id")) for t in tasks if isinstance(t.get("data") or {}, dict))
            total = data.get("total", 0) if isinstance(data, dict) else 0
            if not tasks or not isinstance(total, int) or len(ids) >= total:
                return ids
            page += 1

    def add_tasks(self, project: int, tasks: list[dict]) -> int:
        """Import the tasks whose sample is not in the project yet (re-runs add nothing); how many were added."""
        present = self.sample_ids(project)
        new = [t for t in tasks if t["data"]["sample_id"] not in present]
        if new:
            self._call("POST", f"/api/projects/{project}/import", json=new)
        return len(new)

    def export(self, project: int) -> list[dict]:
        """The project's tasks with their annotations (Label Studio's JSON export)."""
        answer = self._call("GET", f"/api/projects/{project}/export", expect=list,
                            params={"exportType": "JSON", "download_all_tasks": "true"})
        return self._records(answer, "tasks", "exported tasks")


def fetch_export(url: str, title: str, export_path: str, batch: dict | None) -> int:
    """Save the project's export as `export_path`: the tasks of `batch`, or, without one, every task alops
    created (they carry their sample and batch ids); the task count."""
    from alops.core.files import write_json

    studio = LabelStudio(url)
    tasks = [t for t in studio.export(studio.project(title))
             if isinstance(t.get("data"), dict) and t["data"].get("sample_id") is not None]
    if batch is not None:
        wanted = {str(s) for s in batch["sample_ids"]}
        tasks = [t for t in tasks if str(t["data"]["sample_id"]) in wanted]
    write_json(export_path, tasks)
    return len(tasks)


def send_tasks(url: str, title: str, config: str, tasks_path: str) -> tuple[int, int]:
    """Create the tasks of `tasks_path` in the project (found or created); (project id, tasks added)."""
    import json

    studio = LabelStudio(url)
    project_id = studio.project(title, config)
    with open(tasks_path, encoding="utf-8") as handle:
        return project_id, studio.add_tasks(project_id, json.load(handle))
