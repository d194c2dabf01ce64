"""The loopback Hub's HTTP side: one request handler that parses, dispatches to the server's public methods and
writes answers (JSON, file bodies with Range, LFS redirects, injected faults)."""

from __future__ import annotations

import base64
import json
import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qs, quote, unquote, urlsplit

from hub_repo import (
    Blob,
    HubHttpError,
    Repo,
    RequestRecord,
    Unsatisfiable,
    paths_info,
    parse_range,
    refs_json,
    sha1_hex,
)

if TYPE_CHECKING:
    from hub_server import HubServer

_CHUNK = 1 << 16
_API_VERBS = {"revision", "tree", "paths-info", "preupload", "commit", "refs", "settings"}

class Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads must not block stop()
    hub: HubServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end after a minute
    server: Httpd

    def setup(self) -> None:
        super().setup()
        with self.server.hub.lock:
            self.server.hub.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.hub.lock:
            self.server.hub.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # ---- plumbing --------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        path, self._query = unquote(split.path), parse_qs(split.query)
        auth = self.headers.get("Authorization", "")
        self._token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        self._status, self._body_bytes = 0, 0
        hub.request_started()
        try:
            body = self._read_body() if method in ("POST", "PUT") else b""
            failure = hub.faults.take_failure(path)
            if failure is not None:
                raise HubHttpError(failure, None, f"Injected failure ({failure})")
            raw_parts = split.path.strip("/").split("/")
            if path.startswith("/api/"):
                self._api(method, raw_parts[1:], body)
            elif "resolve" in raw_parts[1:3] and method in ("GET", "HEAD"):
                self._resolve(method, raw_parts)
            elif raw_parts[0] == "cdn" and method in ("GET", "HEAD"):
                self._cdn(method, raw_parts)
            else:
                raise HubHttpError(404, None, f"Not found: {path}")
        except HubHttpError as e:
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug or a malformed request: answer 500 rather than drop the connection
            if self._status:
                raise
            message = f"{type(e).__name__}: {e}".encode("ascii", "replace").decode().replace("\n", " ")[:300]
            self._send_error(HubHttpError(500, None, message))
        finally:
            hub.request_done(
                RequestRecord(method, path, self.headers.get("Range"), self._status, self._token, self._body_bytes)
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _flag(self, name: str) -> bool:
        return self._query.get(name, [""])[0].lower() in ("1", "true")

    def _send_json(self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_error(self, e: HubHttpError) -> None:
        headers = {"X-Error-Message": e.message, **e.headers}
        if e.code:
            headers["X-Error-Code"] = e.code
        self._send_json({"error": e.message, **e.body}, e.status, headers)

    # ---- /api ------------------------------------------------------------------------------
    def _api(self, method: str, parts: list[str], body: bytes) -> None:
        hub = self.server.hub
        if parts == ["whoami-v2"] and method == "GET":
            return self._whoami()
        if parts == ["repos", "create"] and method == "POST":
            return self._create_repo(body)
        if parts == ["validate-yaml"] and method == "POST":
            return self._send_json({"errors": [], "warnings": []})
        if len(parts) < 2 or parts[0] != "models":
            raise HubHttpError(404, None, f"Not found: /api/{'/'.join(parts)}")
        n = repo_id_len(parts[1:], hub.repos)
        repo_id = "/".join(unquote(p) for p in parts[1 : 1 + n])
        verb, rest = (parts[1 + n], [unquote(p) for p in parts[2 + n :]]) if len(parts) > 1 + n else (None, [])
        writing = verb in ("preupload", "commit", "settings")
        if writing:
            with hub.lock:
                repo = hub.repos.get(repo_id)
                hub.check_write(self._token, repo)
            if repo is None:
                raise HubHttpError(404, "RepoNotFound", "Repository not found")
        else:
            repo = hub.repo_for_read(repo_id, self._token, file_access=False)
        blobs = self._flag("blobs")
        if verb is None and method == "GET":
            return self._send_json(hub.model_info(repo, hub.resolve_revision(repo, "main"), blobs))
        if verb == "revision" and rest and method == "GET":
            return self._send_json(hub.model_info(repo, hub.resolve_revision(repo, rest[0]), blobs))
        if verb == "tree" and rest and method == "GET":
            commit = hub.resolve_revision(repo, rest[0])
            return self._send_json(hub.tree(commit, "/".join(rest[1:]), self._flag("recursive"), self._flag("expand")))
        if verb == "paths-info" and rest and method == "POST":
            commit = hub.resolve_revision(repo, rest[0])
            wanted = parse_qs(body.decode())
            return self._send_json(paths_info(commit, wanted.get("paths", [])))
        if verb == "refs" and method == "GET":
            return self._send_json(refs_json(repo))
        if verb == "preupload" and rest and method == "POST":
            return self._preupload(repo, rest[0], body)
        if verb == "commit" and rest and method == "POST":
            return self._commit(repo, rest[0], body)
        if verb == "settings" and method == "PUT":  # update_repo_settings: recorded, gated/private applied
            hub.apply_settings(repo, json.loads(body or b"{}"))
            return self._send_json({})
        raise HubHttpError(404, None, f"Not found: /api/{'/'.join(parts)}")

    def _whoami(self) -> None:
        hub = self.server.hub
        if self._token is None or self._token not in hub.known_tokens():
            raise HubHttpError(401, None, "Invalid credentials in Authorization header")
        role = "write" if self._token == hub.write_token else "read"
        token_info = {"displayName": "test token", "role": role}
        self._send_json(
            {
                "type": "user",
                "id": "0" * 24,
                "name": hub.user,
                "fullname": "Test User",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": token_info},
            }
        )

    def _create_repo(self, body: bytes) -> None:
        hub = self.server.hub
        hub.check_write(self._token, None)
        payload = json.loads(body or b"{}")
        if payload.get("type", "model") not in (None, "model"):
            raise HubHttpError(400, None, "The test hub only serves model repos")
        name, org = payload.get("name"), payload.get("organization")
        if not name:
            raise HubHttpError(400, None, "Missing repo name")
        repo_id = f"{org or hub.user}/{name}"
        url = f"{hub.url}/{repo_id}"
        with hub.lock:
            if repo_id in hub.repos:
                raise HubHttpError(409, None, "You already created this model repo", body={"url": url})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            hub.add_repo(repo_id, {}, sha=sha1_hex(f"hub-server:created:{repo_id}"), private=private)
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _preupload(self, repo: Repo, revision: str, body: bytes) -> None:
        hub = self.server.hub
        commit = hub.resolve_revision(repo, revision)
        files = json.loads(body)["files"]
        answer = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": commit.files[f["path"]].git_oid if f["path"] in commit.files else None,
            }
            for f in files
        ]
        self._send_json({"files": answer, "commitOid": commit.sha})

    def _commit(self, repo: Repo, branch: str, body: bytes) -> None:
        hub = self.server.hub
        if branch not in repo.refs:
            raise HubHttpError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
        if self._query.get("create_pr"):
            raise HubHttpError(400, None, "The test hub does not support pull requests")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        adds: dict[str, Blob] = {}
        deletes: list[str] = []
        title = "Commit"
        with hub.lock:
            files = repo.commits[repo.refs[branch]].files
            for item in lines:
                key, value = item.get("key"), item.get("value", {})
                if key == "header":
                    title = value.get("summary") or title
                    parent = value.get("parentCommit")
                    if parent and parent != repo.refs[branch]:
                        raise HubHttpError(412, None, "A commit has happened since. Please refresh and try again.")
                elif key == "file":
                    adds[value["path"]] = hub.store_bytes(value["path"], base64.b64decode(value["content"]))
                elif key in ("deletedFile", "deletedFolder"):
                    path = value["path"].rstrip("/")
                    hit = [p for p in files if p == path or (key == "deletedFolder" and p.startswith(path + "/"))]
                    if not hit:
                        raise HubHttpError(404, "EntryNotFound", "A file with this name doesn't exist")
                    deletes += hit
                else:
                    raise HubHttpError(400, None, f"Unsupported commit operation {key!r} (no LFS on the test hub)")
            sha = hub.commit_files(repo, branch, adds, deletes, title)
        commit_url = f"{hub.url}/{repo.repo_id}/commit/{sha}"
        self._send_json({"success": True, "commitOid": sha, "commitUrl": commit_url, "pullRequestUrl": None})

    # ---- /{repo}/resolve/{rev}/{path} --------------------------------------------------------
    def _resolve(self, method: str, raw_parts: list[str]) -> None:
        hub = self.server.hub
        n = raw_parts.index("resolve")
        repo_id = "/".join(unquote(p) for p in raw_parts[:n])
        repo = hub.repo_for_read(repo_id, self._token, file_access=True)
        if len(raw_parts) < n + 3:
            raise HubHttpError(404, "EntryNotFound", "Missing file path")
        commit = hub.resolve_revision(repo, unquote(raw_parts[n + 1]))
        filename = unquote("/".join(raw_parts[n + 2 :]))
        blob = commit.files.get(filename)
        if blob is None:
            raise HubHttpError(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit.sha})
        headers = {"ETag": f'"{blob.etag}"', "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers |= {"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)}
            if hub.redirect_lfs and method == "GET":  # as the Hub does: a 302 to a storage URL without auth
                location = f"/cdn/{quote(repo_id)}/{commit.sha}/{quote(filename)}"
                self.send_response(302)
                for k, v in (headers | {"Location": location, "Content-Length": "0"}).items():
                    self.send_header(k, v)
                self.end_headers()
                return
        self._send_blob(method, f"{repo_id}/{filename}", blob, headers)

    # ---- /cdn/{repo}/{sha}/{path}: the storage behind LFS redirects (another ETag, no auth) ---
    def _cdn(self, method: str, raw_parts: list[str]) -> None:
        hub = self.server.hub
        n = next(i for i, p in enumerate(raw_parts) if re.fullmatch(r"[0-9a-f]{40}", p))
        repo_id, filename = "/".join(unquote(p) for p in raw_parts[1:n]), unquote("/".join(raw_parts[n + 1 :]))
        blob = hub.repos[repo_id].commits[raw_parts[n]].files.get(filename) if repo_id in hub.repos else None
        if blob is None:
            raise HubHttpError(404, None, "No such object")
        self._send_blob(method, f"{repo_id}/{filename}", blob, {"ETag": f'"cdn-{blob.sha256[:24]}"', "Accept-Ranges": "bytes"})

    def _send_blob(self, method: str, key: str, blob: Blob, headers: dict[str, str]) -> None:
        """The bytes of ``blob`` (Range -> 206, 416), counted, with drops injected."""
        hub = self.server.hub
        if_range = self.headers.get("If-Range")
        try:
            span = parse_range(self.headers.get("Range"), blob.size)
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{blob.size}"
            self._send_json({"error": "Range Not Satisfiable"}, 416, headers)
            return
        if span is not None and if_range is not None and if_range.strip() != headers["ETag"]:
            span = None  # the client's copy is stale: send the whole (new) file
        start, end = span if span is not None else (0, blob.size - 1)
        length = end - start + 1
        self.send_response(206 if span is not None else 200)
        for k, v in headers.items():
            self.send_header(k, v)
        if span is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{blob.size}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if method == "HEAD":
            return
        drop_after = hub.faults.take_drop()
        budget = length if drop_after is None else min(drop_after, length)
        with open(blob.source, "rb") as f:
            f.seek(start)
            while budget > 0:
                chunk = f.read(min(_CHUNK, budget))
                if not chunk:
                    break
                self.wfile.write(chunk)
                budget -= len(chunk)
                self._body_bytes += len(chunk)
                hub.count(key, len(chunk))
        if drop_after is not None and drop_after < length:
            if hub.faults.stalling:  # hold the connection open, silent, until the test releases it
                self.wfile.flush()
                hub.faults.released.wait()
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


def repo_id_len(parts: list[str], repos: Mapping[str, Repo]) -> int:
    """How many leading path segments form the repo id (1 for canonical ids like `gpt2`, else 2)."""
    if len(parts) == 1 or (unquote("/".join(parts[:2])) not in repos and parts[1] in _API_VERBS):
        return 1
    return 2
