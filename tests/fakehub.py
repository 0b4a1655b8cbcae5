"""The part of the Hugging Face Hub protocol huggingface_hub uses to create a repo and a branch,
commit files (regular ones inline, large ones through the legacy LFS batch API), read revision
and path info, and resolve a file (with X-Repo-Commit, ETag and X-Linked-Etag), served from memory
on 127.0.0.1 for the tests. Select it with HF_ENDPOINT (and HF_HUB_DISABLE_XET=1: Xet storage is
not spoken here). ``fail`` makes the next requests fail: an HTTP status, or "truncate" to cut a
download short."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote

LIFETIME = 600  # seconds the server lives at most
MAX_REQUESTS = 2000


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> path -> bytes

    def commit(self, revision: str) -> str | None:
        """The commit a branch name or a whole commit id names (the Hub resolves no shorter id)."""
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


class FakeHub:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.fail: list[int | str] = []  # one entry per request to fail, oldest first
        self.requests: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.handle(self, "HEAD")

            def do_GET(self):
                hub.handle(self, "GET")

            def do_POST(self):
                hub.handle(self, "POST")

            def do_PUT(self):
                hub.handle(self, "PUT")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 30
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.lifetime = threading.Timer(LIFETIME, self.httpd.shutdown)  # stops by itself, whatever the tests do
        self.lifetime.daemon = True
        self.lifetime.start()

    def close(self) -> None:
        self.lifetime.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- the protocol ---

    def handle(self, request, method: str) -> None:
        path = unquote(request.path.split("?", 1)[0])
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0)) if method in ("POST", "PUT") else b""
        self.requests.append(f"{method} {path}")
        if len(self.requests) > MAX_REQUESTS:
            return self.send(request, 429, {"error": f"the fake hub takes at most {MAX_REQUESTS} requests"})
        if self.fail and self.fail[0] != "truncate":
            status = self.fail.pop(0)
            return self.send(request, status, {"error": f"failing on purpose with {status}"}, head=method == "HEAD")
        routes = [
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<branch>.+)", self.create_branch),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>.+)", self.preupload),
            ("POST", r"/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch", self.lfs_batch),
            ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self.lfs_upload),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>.+)", self.commit),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>.+)", self.paths_info),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>.+)", self.revision),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/refs", self.refs),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)/commits/(?P<rev>[^?]+)", self.history),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)", self.revision),
            ("HEAD", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve),
            ("GET", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve),
        ]
        for verb, pattern, route in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return route(request, body, **match.groupdict())
        self.send(request, 404, {"error": f"no route {method} {path}"})

    def send(self, request, status: int, payload: object = None, headers: dict | None = None,
             raw: bytes | None = None, head: bool = False, length: int | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        request.send_response(status)
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        if raw is None:
            request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data) if length is None else length))
        request.end_headers()
        if not head:
            request.wfile.write(data)

    def missing(self, request, code: str, message: str, head: bool = False) -> None:
        self.send(request, 404, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

    def repo(self, request, name: str, head: bool = False) -> Repo | None:
        if name not in self.repos:
            self.missing(request, "RepoNotFound", f"Repository {name} not found", head)
        return self.repos.get(name)

    def at(self, request, name: str, revision: str, head: bool = False) -> tuple[Repo, str] | None:
        """The repo and the commit ``revision`` names, or None when a 404 was sent."""
        found = self.repo(request, name, head)
        commit = found.commit(revision) if found else None
        if found and commit is None:
            self.missing(request, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        return (found, commit) if commit else None

    def refs(self, request, body: bytes, repo: str) -> None:
        found = self.repo(request, repo)
        if found:
            branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in found.branches.items()]
            self.send(request, 200, {"branches": branches, "tags": [], "converts": [], "pullRequests": []})

    def history(self, request, body: bytes, repo: str, rev: str) -> None:
        """A branch's commits, newest first (here: every commit the branch's files came through)."""
        found = self.at(request, repo, rev)
        if found:
            commits = list(found[0].commits)
            listed = commits[: commits.index(found[1]) + 1][::-1]
            self.send(request, 200, [{"id": c, "title": "zoo push", "message": "", "authors": [],
                                      "date": "2026-01-01T00:00:00.000Z"} for c in listed])

    def create_repo(self, request, body: bytes) -> None:
        data = json.loads(body)
        name = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
        if name in self.repos:
            return self.send(request, 409, {"error": "You already created this model repo", "url": f"{self.url}/{name}"})
        repo = self.repos[name] = Repo()
        first = hashlib.sha1(f"init {name}".encode()).hexdigest()
        repo.commits[first] = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
        repo.branches["main"] = first
        self.send(request, 200, {"url": f"{self.url}/{name}", "name": name})

    def validate_yaml(self, request, body: bytes) -> None:
        import yaml

        content = json.loads(body)["content"]
        front = yaml.safe_load(content.split("---\n")[1]) if content.startswith("---\n") else {}
        errors = [] if isinstance(front, dict) else [{"message": "the front matter is not a mapping"}]
        self.send(request, 200 if not errors else 400, {"errors": errors, "warnings": []})

    def create_branch(self, request, body: bytes, repo: str, branch: str) -> None:
        found = self.repo(request, repo)
        if found is None:
            return
        if branch in found.branches:
            return self.send(request, 409, {"error": f"Reference {branch} already exists"})
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        found.branches[branch] = found.commit(start)
        self.send(request, 200, {})

    def preupload(self, request, body: bytes, repo: str, rev: str) -> None:
        if (where := self.at(request, repo, rev)) is None:
            return
        found, commit = where
        files = found.commits[commit]
        answer = []
        for item in json.loads(body)["files"]:
            lfs = item["path"].endswith(".safetensors")
            old = files.get(item["path"])
            oid = None if old is None else hashlib.sha256(old).hexdigest() if lfs else git_oid(old)
            answer.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                           "oid": oid})
        self.send(request, 200, {"files": answer, "commitOid": commit})

    def lfs_batch(self, request, body: bytes, repo: str) -> None:
        objects = []
        for obj in json.loads(body)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs:
                entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        self.send(request, 200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, request, body: bytes, oid: str) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            return self.send(request, 400, {"error": "sha256 mismatch"})
        self.lfs[oid] = body
        self.send(request, 200, {})

    def commit(self, request, body: bytes, repo: str, rev: str) -> None:
        if (where := self.at(request, repo, rev)) is None:
            return
        found, parent = where
        files = dict(found.commits[parent])
        summary = ""
        for line in body.decode().splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                summary = value["summary"]
            elif item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                files[value["path"]] = self.lfs[value["oid"]]
            elif item["key"] == "deletedFile":
                files.pop(value["path"], None)
        commit = hashlib.sha1(f"{parent} {summary} {sorted(files)} {len(found.commits)}".encode()).hexdigest()
        found.commits[commit] = files
        found.branches[rev] = commit
        self.send(request, 200, {"commitUrl": f"{self.url}/{repo}/commit/{commit}", "commitOid": commit})

    def paths_info(self, request, body: bytes, repo: str, rev: str) -> None:
        if (where := self.at(request, repo, rev)) is None:
            return
        found, commit = where
        text = body.decode()
        paths = json.loads(text)["paths"] if text.startswith("{") else [
            unquote(v) for k, v in (p.split("=", 1) for p in text.split("&")) if k == "paths"]
        self.send(request, 200, [self.entry(p, found.commits[commit][p]) for p in paths if p in found.commits[commit]])

    def entry(self, path: str, data: bytes) -> dict:
        item = {"type": "file", "path": path, "size": len(data), "oid": git_oid(data)}
        if path.endswith(".safetensors"):
            item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
        return item

    def revision(self, request, body: bytes, repo: str, rev: str = "main") -> None:
        if (where := self.at(request, repo, rev)) is None:
            return
        found, commit = where
        files = found.commits[commit]
        self.send(request, 200, {"id": repo, "modelId": repo, "sha": commit, "private": False,
                                 "siblings": [{"rfilename": p} for p in sorted(files)]})

    def resolve(self, request, body: bytes, repo: str, rev: str, file: str) -> None:
        head = request.command == "HEAD"
        if (where := self.at(request, repo, rev, head)) is None:
            return
        found, commit = where
        data = found.commits[commit].get(file)
        if data is None:
            return self.missing(request, "EntryNotFound", f"{file} does not exist on {rev}", head)
        etag = hashlib.sha256(data).hexdigest() if file.endswith(".safetensors") else git_oid(data)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"'}
        if file.endswith(".safetensors"):
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        if not head and self.fail and self.fail[0] == "truncate":
            self.fail.pop(0)
            request.close_connection = True
            return self.send(request, 200, raw=data[: len(data) // 2], headers=headers, length=len(data))
        self.send(request, 200, raw=data, headers=headers, head=head)
