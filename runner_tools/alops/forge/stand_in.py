"""A local stand-in for the GitLab (REST v4) and GitHub (REST v3) endpoints the kit uses.

`alops rehearse` points a rehearsal's jobs at it, so report comments, pull requests, releases and issues land
here instead of on a forge; the kit's tests use it the same way. It keeps merge requests / pull requests, their
comments, releases and issues in memory, answers with payloads shaped like the documented APIs, records every
request, checks the token, and can inject faults: a status (429, 502, 403, ...) with or without applying the
request first, optionally with `Retry-After`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Fault:
    method: str
    pattern: str
    status: int
    apply: bool = False  # apply the request, then answer with the fault (a lost response)
    retry_after: int | None = None
    times: int = 1


class ForgeState:
    def __init__(self, token: str):
        self.token = token
        self.requests: list[dict] = []
        self.faults: list[Fault] = []
        self.merge_requests: list[dict] = []
        self.comments: dict[int, list[dict]] = {}
        self.releases: list[dict] = []
        self.issues: list[dict] = []  # {"number", "title", "body", "state"}, both forges
        self.pipelines: list[dict] = []  # pipelines started through the trigger API
        self.uploads: list[str] = []
        self.next_id = 100
        self.lock = threading.Lock()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class ForgeServer:
    """`with ForgeServer(token) as server:` → `server.url`, `server.state`."""

    def __init__(self, token: str):
        self.state = ForgeState(token)
        handler: type[_Handler] = type("Handler", (_Handler,), {"state": self.state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        handler.base = self.url

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def inject(self, method: str, pattern: str, status: int, apply: bool = False, retry_after: int | None = None,
               times: int = 1) -> None:
        self.state.faults.append(Fault(method, pattern, status, apply, retry_after, times))

    def calls(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.state.requests if r["method"] == method and re.search(pattern, r["path"])]

    def open_request(self, forge: str, source: str, target: str) -> int:
        """Open a merge request (GitLab) or pull request (GitHub) from `source` into `target`; its number."""
        state = self.state
        number = len(state.merge_requests) + 1
        if forge == "gitlab":
            state.merge_requests.append({"id": state.new_id(), "iid": number, "project_id": "1", "state": "opened",
                                         "title": source, "description": "", "source_branch": source,
                                         "target_branch": target, "labels": []})
        else:
            state.merge_requests.append({"id": state.new_id(), "number": number, "state": "open", "title": source,
                                         "body": "", "draft": False, "head": source, "base": target, "labels": []})
        return number

    def posts(self, forge: str) -> list[tuple[str, str]]:
        """What the jobs wrote, as (what, text): comments, merge/pull requests, releases, issues, pipelines."""
        state, mark = self.state, "!" if forge == "gitlab" else "#"
        found = []
        for number, comments in sorted(state.comments.items()):
            found += [(f"a comment on {mark}{number}", comment["body"]) for comment in comments]
        for request in state.merge_requests:
            text = request.get("description", request.get("body")) or ""
            if text:
                found.append((f"{mark}{request.get('iid', request.get('number'))} {request['title']!r}", text))
        found += [(f"release {release['tag_name']!r}", release.get("description") or release.get("body") or "")
                  for release in state.releases]
        for issue in state.issues:
            closed = " (closed)" if issue["state"] == "closed" else ""
            found.append((f"issue #{issue['number']} {issue['title']!r}{closed}", issue["body"]))
            found += [(f"a comment on issue #{issue['number']}", note["body"]) for note in issue.get("notes", [])]
        found += [(f"a pipeline of {pipeline['ref']!r} triggered", json.dumps(pipeline["payload"], default=str))
                  for pipeline in state.pipelines]
        return found


class _Handler(BaseHTTPRequestHandler):
    state: ForgeState
    base: str

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, status: int, body=None, headers: dict | None = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, {k: v[0] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        state = self.state
        with state.lock:
            state.requests.append({"method": method, "path": path, "query": query, "headers": dict(self.headers),
                                   "body": raw.decode("utf-8", "replace"), "at": time.monotonic()})
            given = self.headers.get("PRIVATE-TOKEN") or self.headers.get("JOB-TOKEN") or \
                (self.headers.get("Authorization") or "").split(" ")[-1] or query.get("token")  # a trigger token
            if given != state.token:
                return self._reply(401, {"message": "401 Unauthorized"})
            fault = next((f for f in state.faults if f.method == method and re.search(f.pattern, path) and f.times > 0), None)
            if fault:
                fault.times -= 1
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                if fault.apply:
                    self._route(method, path, query, raw, answer=False)
                message = {403: "403 Forbidden", 429: "Too Many Requests"}.get(fault.status, "Bad Gateway")
                return self._reply(fault.status, {"message": message}, headers)
            self._route(method, path, query, raw)

    do_GET = lambda self: self._handle("GET")
    do_POST = lambda self: self._handle("POST")
    do_PUT = lambda self: self._handle("PUT")
    do_PATCH = lambda self: self._handle("PATCH")

    def _route(self, method: str, path: str, query: dict, raw: bytes, answer: bool = True) -> None:
        reply = self._reply if answer else (lambda *a, **k: None)
        for pattern, verb, function in ROUTES:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                status, body = function(self, query, _body(raw, self.headers.get("Content-Type", "")),
                                        *[unquote(g) for g in match.groups()])
                return reply(status, body)
        return reply(404, {"message": "404 Not Found"})


def _body(raw: bytes, content_type: str) -> dict:
    if "json" in content_type:
        return json.loads(raw or b"{}")
    if "x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    return {"_raw": raw}


# ---- GitLab v4 -------------------------------------------------------------------------------------------

def _gl_mr(handler, mr: dict) -> dict:
    return {**mr, "web_url": f"{handler.base}/group/project/-/merge_requests/{mr['iid']}"}


def gl_list_mrs(handler, query, body, project):
    found = [m for m in handler.state.merge_requests
             if m["state"] == query.get("state", m["state"]) and m["source_branch"] == query.get("source_branch", m["source_branch"])
             and m["target_branch"] == query.get("target_branch", m["target_branch"])]
    return 200, [_gl_mr(handler, m) for m in found]


def gl_create_mr(handler, query, body, project):
    state = handler.state
    if any(m["source_branch"] == body["source_branch"] and m["target_branch"] == body["target_branch"] and m["state"] == "opened"
           for m in state.merge_requests):
        return 409, {"message": ["Another open merge request already exists for this source branch"]}
    labels = body.get("labels") or ""
    mr = {"id": state.new_id(), "iid": len(state.merge_requests) + 1, "project_id": project, "state": "opened",
          "title": body["title"], "description": body.get("description", ""), "source_branch": body["source_branch"],
          "target_branch": body["target_branch"], "labels": labels.split(",") if isinstance(labels, str) and labels else list(labels)}
    state.merge_requests.append(mr)
    return 201, _gl_mr(handler, mr)


def gl_update_mr(handler, query, body, project, iid):
    mr = next((m for m in handler.state.merge_requests if str(m["iid"]) == iid), None)
    if mr is None:
        return 404, {"message": "404 Not found"}
    for key in ("title", "description"):
        if key in body:
            mr[key] = body[key]
    if "labels" in body:
        labels = body["labels"]
        mr["labels"] = labels.split(",") if isinstance(labels, str) else list(labels)
    return 200, _gl_mr(handler, mr)


def gl_list_notes(handler, query, body, project, iid):
    return 200, handler.state.comments.get(int(iid), [])


def gl_create_note(handler, query, body, project, iid):
    note = {"id": handler.state.new_id(), "body": body["body"], "author": {"username": "alops-bot"}, "system": False}
    handler.state.comments.setdefault(int(iid), []).append(note)
    return 201, note


def gl_update_note(handler, query, body, project, iid, note_id):
    note = next((n for n in handler.state.comments.get(int(iid), []) if str(n["id"]) == note_id), None)
    if note is None:
        return 404, {"message": "404 Not found"}
    note["body"] = body["body"]
    return 200, note


def gl_upload(handler, query, body, project):
    """The file's name from the multipart form, as GitLab answers: alt (the name without its extension), url, markdown."""
    handler.state.uploads.append(project)
    named = re.search(rb'filename="([^"]+)"', body.get("_raw", b""))
    name = os.path.basename(named[1].decode()) if named else "file"
    url = f"/uploads/{handler.state.new_id()}/{name}"
    alt = os.path.splitext(name)[0]
    return 201, {"alt": alt, "url": url, "full_path": f"/group/project{url}", "markdown": f"![{alt}]({url})"}


def _gl_release(handler, release):
    return {**release, "_links": {"self": f"{handler.base}/group/project/-/releases/{release['tag_name']}"}}


def gl_get_release(handler, query, body, project, tag):
    release = next((r for r in handler.state.releases if r["tag_name"] == tag), None)
    return (200, _gl_release(handler, release)) if release else (404, {"message": "404 Not Found"})


def gl_create_release(handler, query, body, project):
    if any(r["tag_name"] == body["tag_name"] for r in handler.state.releases):
        return 409, {"message": "Release already exists"}
    release = {"tag_name": body["tag_name"], "name": body.get("name"), "description": body.get("description"),
               "commit": {"id": body.get("ref")}}
    handler.state.releases.append(release)
    return 201, _gl_release(handler, release)


def gl_update_release(handler, query, body, project, tag):
    release = next((r for r in handler.state.releases if r["tag_name"] == tag), None)
    if release is None:
        return 404, {"message": "404 Not Found"}
    release.update({k: body[k] for k in ("name", "description") if k in body})
    return 200, _gl_release(handler, release)


# ---- GitHub v3 -------------------------------------------------------------------------------------------

def _gh_pull(handler, owner, repo, pull):
    api = f"{handler.base}/repos/{owner}/{repo}"
    return {"id": pull["id"], "number": pull["number"], "state": pull["state"], "title": pull["title"],
            "body": pull["body"], "draft": pull["draft"], "url": f"{api}/pulls/{pull['number']}",
            "issue_url": f"{api}/issues/{pull['number']}", "html_url": f"https://github.test/{owner}/{repo}/pull/{pull['number']}",
            "head": {"ref": pull["head"], "label": f"{owner}:{pull['head']}"}, "base": {"ref": pull["base"]},
            "labels": [{"name": n} for n in pull["labels"]]}


def gh_list_pulls(handler, query, body, owner, repo):
    head = query.get("head", "")
    found = [p for p in handler.state.merge_requests if p["state"] == query.get("state", "open")
             and (not head or f"{owner}:{p['head']}" == head) and p["base"] == query.get("base", p["base"])]
    return 200, [_gh_pull(handler, owner, repo, p) for p in found]


def gh_create_pull(handler, query, body, owner, repo):
    state = handler.state
    if any(p["head"] == body["head"] and p["base"] == body["base"] and p["state"] == "open" for p in state.merge_requests):
        return 422, {"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]}
    pull = {"id": state.new_id(), "number": len(state.merge_requests) + 1, "state": "open", "title": body["title"],
            "body": body.get("body", ""), "draft": bool(body.get("draft")), "head": body["head"], "base": body["base"],
            "labels": []}
    state.merge_requests.append(pull)
    return 201, _gh_pull(handler, owner, repo, pull)


def gh_update_pull(handler, query, body, owner, repo, number):
    pull = next((p for p in handler.state.merge_requests if str(p["number"]) == number), None)
    if pull is None:
        return 404, {"message": "Not Found"}
    pull.update({k: body[k] for k in ("title", "body") if k in body})
    return 200, _gh_pull(handler, owner, repo, pull)


def gh_add_labels(handler, query, body, owner, repo, number):
    pull = next((p for p in handler.state.merge_requests if str(p["number"]) == number), None)
    if pull is None:
        return 404, {"message": "Not Found"}
    names = body.get("labels", body) if isinstance(body, dict) else body
    pull["labels"] = sorted(set(pull["labels"]) | set(names))
    return 200, [{"name": n} for n in pull["labels"]]


def _gh_comment(handler, owner, repo, comment):
    api = f"{handler.base}/repos/{owner}/{repo}"
    return {**comment, "url": f"{api}/issues/comments/{comment['id']}",
            "html_url": f"https://github.test/{owner}/{repo}/pull/{comment['issue']}#issuecomment-{comment['id']}",
            "user": {"login": "github-actions[bot]"}}


def gh_get_issue(handler, query, body, owner, repo, number):
    api = f"{handler.base}/repos/{owner}/{repo}"
    return 200, {"id": int(number), "number": int(number), "url": f"{api}/issues/{number}", "state": "open",
                 "html_url": f"https://github.test/{owner}/{repo}/pull/{number}", "title": "pull"}


def gh_list_comments(handler, query, body, owner, repo, number):
    return 200, [_gh_comment(handler, owner, repo, c) for c in handler.state.comments.get(int(number), [])]


def gh_create_comment(handler, query, body, owner, repo, number):
    comment = {"id": handler.state.new_id(), "body": body["body"], "issue": int(number)}
    handler.state.comments.setdefault(int(number), []).append(comment)
    return 201, _gh_comment(handler, owner, repo, comment)


def gh_update_comment(handler, query, body, owner, repo, comment_id):
    for comments in handler.state.comments.values():
        for comment in comments:
            if str(comment["id"]) == comment_id:
                comment["body"] = body["body"]
                return 200, _gh_comment(handler, owner, repo, comment)
    return 404, {"message": "Not Found"}


def _gh_release(handler, owner, repo, release):
    api = f"{handler.base}/repos/{owner}/{repo}"
    return {**release, "url": f"{api}/releases/{release['id']}",
            "html_url": f"https://github.test/{owner}/{repo}/releases/tag/{release['tag_name']}"}


def gh_get_release(handler, query, body, owner, repo, tag):
    release = next((r for r in handler.state.releases if r["tag_name"] == tag), None)
    return (200, _gh_release(handler, owner, repo, release)) if release else (404, {"message": "Not Found"})


def gh_create_release(handler, query, body, owner, repo):
    if any(r["tag_name"] == body["tag_name"] for r in handler.state.releases):
        return 422, {"message": "Validation Failed", "errors": [{"code": "already_exists"}]}
    release = {"id": handler.state.new_id(), "tag_name": body["tag_name"], "name": body.get("name"),
               "body": body.get("body"), "target_commitish": body.get("target_commitish")}
    handler.state.releases.append(release)
    return 201, _gh_release(handler, owner, repo, release)


def gh_update_release(handler, query, body, owner, repo, release_id):
    release = next((r for r in handler.state.releases if str(r["id"]) == release_id), None)
    if release is None:
        return 404, {"message": "Not Found"}
    release.update({k: body[k] for k in ("name", "body") if k in body})
    return 200, _gh_release(handler, owner, repo, release)


def gl_trigger_pipeline(handler, query, body, project, ref):
    """The webhook form of GitLab's pipeline trigger API (token in the query string, any JSON body kept as the
    pipeline's TRIGGER_PAYLOAD)."""
    pipeline = {"id": handler.state.new_id(), "project_id": project, "ref": ref, "status": "created", "source": "trigger",
                "web_url": f"{handler.base}/group/project/-/pipelines/{handler.state.next_id}"}
    handler.state.pipelines.append({**pipeline, "payload": body})
    return 201, pipeline


def _gl_issue(handler, issue: dict) -> dict:
    return {"id": issue["number"] + 5000, "iid": issue["number"], "title": issue["title"], "description": issue["body"],
            "state": issue["state"], "web_url": f"{handler.base}/group/project/-/issues/{issue['number']}"}


def gl_list_issues(handler, query, body, project):
    """Issues by state; `search` as GitLab's: every word in the title or the description."""
    words = query.get("search", "").split()
    found = [i for i in handler.state.issues if i["state"] == query.get("state", i["state"])
             and all(w in i["title"] or w in i["body"] for w in words)]
    return 200, [_gl_issue(handler, i) for i in found]


def gl_create_issue(handler, query, body, project):
    issue = {"number": len(handler.state.issues) + 1, "title": body["title"], "body": body.get("description", ""),
             "state": "opened"}
    handler.state.issues.append(issue)
    return 201, _gl_issue(handler, issue)


def gl_update_issue(handler, query, body, project, iid):
    issue = next((i for i in handler.state.issues if str(i["number"]) == iid), None)
    if issue is None:
        return 404, {"message": "404 Not found"}
    issue.update({k: body[v] for k, v in (("title", "title"), ("body", "description")) if v in body})
    if body.get("state_event") in ("close", "reopen"):
        issue["state"] = "closed" if body["state_event"] == "close" else "opened"
    return 200, _gl_issue(handler, issue)


def gl_create_issue_note(handler, query, body, project, iid):
    issue = next((i for i in handler.state.issues if str(i["number"]) == iid), None)
    if issue is None:
        return 404, {"message": "404 Not found"}
    note = {"id": handler.state.new_id(), "body": body["body"], "author": {"username": "alops-bot"}, "system": False}
    issue.setdefault("notes", []).append(note)
    return 201, note


def _gh_issue(handler, owner, repo, issue: dict) -> dict:
    api = f"{handler.base}/repos/{owner}/{repo}"
    return {"id": issue["number"] + 7000, "number": issue["number"], "title": issue["title"], "body": issue["body"],
            "state": issue["state"], "url": f"{api}/issues/{issue['number']}",
            "html_url": f"https://github.test/{owner}/{repo}/issues/{issue['number']}"}


def gh_list_issues(handler, query, body, owner, repo):
    """Open issues and pull requests (the API lists both; pull requests carry `pull_request`)."""
    state = query.get("state", "open")
    issues = [_gh_issue(handler, owner, repo, i) for i in handler.state.issues if state in ("all", i["state"])]
    pulls = [{**_gh_issue(handler, owner, repo, {"number": p["number"], "title": p["title"], "body": p.get("body") or "",
                                                  "state": p["state"]}),
              "pull_request": {"url": f"{handler.base}/repos/{owner}/{repo}/pulls/{p['number']}"}}
             for p in handler.state.merge_requests if "number" in p and state in ("all", p["state"])]
    return 200, issues + pulls


def gh_create_issue(handler, query, body, owner, repo):
    issue = {"number": 900 + len(handler.state.issues) + 1, "title": body["title"], "body": body.get("body") or "",
             "state": "open"}
    handler.state.issues.append(issue)
    return 201, _gh_issue(handler, owner, repo, issue)


def gh_update_issue(handler, query, body, owner, repo, number):
    issue = next((i for i in handler.state.issues if str(i["number"]) == number), None)
    if issue is None:
        return 404, {"message": "Not Found"}
    issue.update({k: body[k] for k in ("title", "body", "state") if k in body})
    return 200, _gh_issue(handler, owner, repo, issue)


GL = r"/api/v4/projects/([^/]+)"
GH = r"/repos/([^/]+)/([^/]+)"
ROUTES: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
    (GL + r"/merge_requests", "GET", gl_list_mrs),
    (GL + r"/merge_requests", "POST", gl_create_mr),
    (GL + r"/merge_requests/(\d+)", "PUT", gl_update_mr),
    (GL + r"/merge_requests/(\d+)/notes", "GET", gl_list_notes),
    (GL + r"/merge_requests/(\d+)/notes", "POST", gl_create_note),
    (GL + r"/merge_requests/(\d+)/notes/(\d+)", "PUT", gl_update_note),
    (GL + r"/uploads", "POST", gl_upload),
    (GL + r"/releases/([^/]+)", "GET", gl_get_release),
    (GL + r"/releases", "POST", gl_create_release),
    (GL + r"/releases/([^/]+)", "PUT", gl_update_release),
    (GL + r"/ref/([^/]+)/trigger/pipeline", "POST", gl_trigger_pipeline),
    (GL + r"/issues", "GET", gl_list_issues),
    (GL + r"/issues", "POST", gl_create_issue),
    (GL + r"/issues/(\d+)", "PUT", gl_update_issue),
    (GL + r"/issues/(\d+)/notes", "POST", gl_create_issue_note),
    (GH + r"/pulls", "GET", gh_list_pulls),
    (GH + r"/pulls", "POST", gh_create_pull),
    (GH + r"/pulls/(\d+)", "PATCH", gh_update_pull),
    (GH + r"/issues/(\d+)/labels", "POST", gh_add_labels),
    (GH + r"/issues/(\d+)", "GET", gh_get_issue),
    (GH + r"/issues", "GET", gh_list_issues),
    (GH + r"/issues", "POST", gh_create_issue),
    (GH + r"/issues/(\d+)", "PATCH", gh_update_issue),
    (GH + r"/issues/(\d+)/comments", "GET", gh_list_comments),
    (GH + r"/issues/(\d+)/comments", "POST", gh_create_comment),
    (GH + r"/issues/comments/(\d+)", "PATCH", gh_update_comment),
    (GH + r"/releases/tags/(.+)", "GET", gh_get_release),
    (GH + r"/releases", "POST", gh_create_release),
    (GH + r"/releases/(\d+)", "PATCH", gh_update_release),
]
