"""A loopback Hugging Face Hub for tests: the REAL `huggingface_hub` client talks to it over HTTP.

`HubServer` serves model repos (from folders or in-memory bytes) on 127.0.0.1 with the endpoints and
headers the client reads: `/api/models/{repo}[/revision/{rev}]`, `/tree/`, `/paths-info/`, `/refs`,
`HEAD|GET /{repo}/resolve/{rev}/{path}` (ETag, X-Repo-Commit, Range -> 206/416), and the upload path
(`/api/repos/create`, `/preupload/` answering "regular" for every file, `/commit/` with inline base64).
Errors carry the `X-Error-Code` headers that make `hf_raise_for_status` raise `RepositoryNotFoundError`,
`GatedRepoError`, `RevisionNotFoundError` and `EntryNotFoundError`.

It counts body bytes of file GETs and logs every request, and it injects faults: bodies cut short
(`drop_every`), files changed between requests (`replace_file`), error statuses (`fail_next`).
`point_hf_hub_at(server, monkeypatch, hf_home)` points huggingface_hub (constants cached at import
time included) at the server, with caches and token files under `hf_home` and Xet disabled.

Semantics follow the Hub: gated repos list their files and info publicly, only `resolve` needs the
token (none: 401, wrong: 403, both `GatedRepo`). Files ending in `LFS_SUFFIXES` are LFS files (ETag =
sha256, `X-Linked-Etag`/`X-Linked-Size`, `lfs` in tree listings); others use the git blob sha1.
A folder given to `add_repo` is hashed once and served from where it is: do not modify it afterwards
(use `replace_file`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import parse_qs, quote, unquote, urlsplit

WRITE_TOKEN = "hf_test_write_token"
USER = "test-user"
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx", ".msgpack", ".h5", ".npz")
_CHUNK = 1 << 16
_API_VERBS = {"revision", "tree", "paths-info", "preupload", "commit", "refs", "settings"}

FileSource = str | Path | Mapping[str, bytes]


@dataclass(frozen=True)
class Blob:
    """One version of one file: where its bytes live and its hashes."""

    source: Path
    size: int
    git_oid: str  # sha1("blob {size}\0" + content), the git object id
    sha256: str
    lfs: bool

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    sha: str
    files: dict[str, Blob]
    title: str
    date: str  # ISO 8601, as the Hub writes it


@dataclass
class Repo:
    repo_id: str
    refs: dict[str, str]  # branch or tag name -> commit sha
    commits: dict[str, Commit]
    private: bool = False
    gated_token: str | None = None
    write_token: str | None = None
    created_at: str = ""
    gated_mode: str | bool | None = None  # set by PUT .../settings (update_repo_settings); None = from gated_token


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # unquoted URL path, without the query
    range: str | None
    status: int
    token: str | None
    body_bytes: int  # file body bytes written (file GETs only)


class HubHttpError(Exception):
    """An error answer: status, optional `X-Error-Code`, message (header + JSON body)."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers, self.body = dict(headers or {}), dict(body or {})


class _Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b` / `a-` / `-n` -> inclusive (start, end); None = serve the whole file; raises _Unsatisfiable."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None or (m[1] == "" and m[2] == ""):
        return None  # invalid or multi-range: ignored, as RFC 9110 allows
    if m[1] == "":
        n = int(m[2])
        if n == 0 or size == 0:
            raise _Unsatisfiable
        return max(size - n, 0), size - 1
    start = int(m[1])
    if m[2] and int(m[2]) < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    end = int(m[2]) if m[2] else size - 1
    return start, min(end, size - 1)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _hash_file(path: Path, name: str) -> Blob:
    size = path.stat().st_size
    sha1 = hashlib.sha1(f"blob {size}\0".encode())
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return Blob(path, size, sha1.hexdigest(), sha256.hexdigest(), name.endswith(LFS_SUFFIXES))


class HubServer:
    """Hub-compatible HTTP server on 127.0.0.1 (port 0) in a daemon thread. See the module docstring."""

    def __init__(self, *, write_token: str = WRITE_TOKEN, user: str = USER):
        self.write_token, self.user = write_token, user
        self.repos: dict[str, Repo] = {}
        self.bytes_sent = 0
        self.bytes_by_path: dict[str, int] = {}  # "repo_id/filename" -> file body bytes sent
        self.log: list[RequestRecord] = []
        self.settings_calls: list[tuple[str, dict[str, Any]]] = []  # (repo_id, body) of each update_repo_settings
        self._lock = threading.RLock()
        self._tmp: Path | None = None
        self._httpd: _Httpd | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._commit_counter = 0
        self._file_gets = 0
        self._drop_n, self._drop_after, self._drop_left = 0, 0, None
        self._fail_left, self._fail_status, self._fail_match = 0, 500, None
        # True: GETs of LFS files answer 302 to /cdn/... (another host's ETag, no auth), as the real Hub does
        self.redirect_lfs = False

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "HubServer":
        if self._httpd is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="hub_server_"))
            self._httpd = _Httpd(("127.0.0.1", 0), _Handler)
            self._httpd.hub = self
            serve = self._httpd.serve_forever
            self._thread = threading.Thread(target=serve, args=(0.05,), name="hub-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        with self._lock:
            for conn in list(self._connections):  # wake handler threads blocked on keep-alive reads
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._httpd.server_close()
        self._httpd = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- repos -----------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        folder: FileSource | None = None,
        *,
        sha: str | None = None,
        gated_token: str | None = None,
        private: bool = False,
        write_token: str | None = None,
        revisions: Mapping[str, FileSource | None] | None = None,
    ) -> str:
        """Serve `folder` (a directory, or {path: bytes}) as model `repo_id` at commit `sha` on `main`.

        `revisions`: extra branch name -> folder/files (own commit), or None (another name for main's commit).
        Returns the commit sha (deterministic from repo_id unless given).
        """
        sha = sha or _sha1(f"hub-server:{repo_id}")
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ValueError(f"sha must be 40 lowercase hex digits, got {sha!r}")
        date = _now()
        repo = Repo(repo_id, {"main": sha}, {}, private, gated_token, write_token, date)
        repo.commits[sha] = Commit(sha, self._load_files(folder), "Initial commit", date)
        for name, source in (revisions or {}).items():
            if source is None:
                repo.refs[name] = sha
            else:
                rev_sha = _sha1(f"hub-server:{repo_id}@{name}")
                repo.commits[rev_sha] = Commit(rev_sha, self._load_files(source), f"Branch {name}", date)
                repo.refs[name] = rev_sha
        with self._lock:
            self.repos[repo_id] = repo
        return sha

    def head(self, repo_id: str, revision: str = "main") -> str:
        """Commit sha that `revision` resolves to."""
        return self._resolve_revision(self.repos[repo_id], revision).sha

    def etag(self, repo_id: str, filename: str, revision: str = "main") -> str:
        """Unquoted ETag the server sends for that file."""
        return self._resolve_revision(self.repos[repo_id], revision).files[filename].etag

    def replace_file(
        self, repo_id: str, filename: str, data: bytes, *, revision: str = "main", new_commit: bool = True
    ) -> str:
        """Change (or add) a file: new content, new ETag. Returns the sha now serving it.

        new_commit=True (the Hub's way): a new commit on branch `revision`; the old sha keeps the old bytes.
        new_commit=False: the bytes change in place under the same sha (an inconsistent server/CDN).
        """
        blob = self._store_bytes(filename, data)
        with self._lock:
            repo = self.repos[repo_id]
            if new_commit:
                return self._commit(repo, revision, {filename: blob}, [], f"Update {filename}")
            commit = self._resolve_revision(repo, revision)
            commit.files[filename] = blob
            return commit.sha

    # ---- instrumentation and faults --------------------------------------------------------
    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_sent = 0
            self.bytes_by_path.clear()
            self.log.clear()
            self._file_gets = 0

    def bytes_for(self, repo_id: str, filename: str) -> int:
        return self.bytes_by_path.get(f"{repo_id}/{filename}", 0)

    def requests(self, method: str | None = None, path_contains: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (path_contains is None or path_contains in r.path)
            ]

    def drop_every(self, n: int, after_bytes: int = 0, *, times: int | None = None) -> None:
        """Every n-th file GET (counted from now) sends full headers, `after_bytes` body bytes, then closes.

        n=0 turns it off; `times` caps the number of drops.
        """
        with self._lock:
            self._drop_n, self._drop_after, self._drop_left, self._file_gets = n, after_bytes, times, 0

    def fail_next(self, k: int = 1, status: int = 500, *, path_contains: str | None = None) -> None:
        """Answer the next k requests (whose path contains `path_contains`, if given) with `status`."""
        with self._lock:
            self._fail_left, self._fail_status, self._fail_match = k, status, path_contains

    def clear_faults(self) -> None:
        self.drop_every(0)
        self.fail_next(0)

    # ---- internals: storage ----------------------------------------------------------------
    def _load_files(self, source: FileSource | None) -> dict[str, Blob]:
        if source is None:
            return {}
        if isinstance(source, Mapping):
            return {name: self._store_bytes(name, data) for name, data in source.items()}
        root = Path(source)
        return {
            p.relative_to(root).as_posix(): _hash_file(p, p.name)
            for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts
        }

    def _store_bytes(self, name: str, data: bytes) -> Blob:
        assert self._tmp is not None, "start() the server first"
        digest = hashlib.sha256(data).hexdigest()
        path = self._tmp / "blobs" / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(data)
        return _hash_file(path, name)

    def _commit(self, repo: Repo, branch: str, adds: dict[str, Blob], deletes: list[str], title: str) -> str:
        with self._lock:
            parent = repo.commits[repo.refs[branch]]
            files = dict(parent.files)
            for path in deletes:
                files.pop(path)
            files.update(adds)
            self._commit_counter += 1
            sha = _sha1(f"{parent.sha}:{self._commit_counter}:{sorted((p, b.git_oid) for p, b in files.items())}")
            repo.commits[sha] = Commit(sha, files, title, _now())
            repo.refs[branch] = sha
            return sha

    def _resolve_revision(self, repo: Repo, revision: str) -> Commit:
        sha = repo.refs.get(revision)
        if sha is None and re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [s for s in repo.commits if s.startswith(revision)]
            sha = matches[0] if len(matches) == 1 else None
        if sha is None:
            raise HubHttpError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo.commits[sha]

    # ---- internals: access -----------------------------------------------------------------
    def _known_tokens(self) -> set[str]:
        tokens = {self.write_token}
        for repo in self.repos.values():
            tokens |= {t for t in (repo.write_token, repo.gated_token) if t}
        return tokens

    def _repo_for_read(self, repo_id: str, token: str | None, *, file_access: bool) -> Repo:
        repo = self.repos.get(repo_id)
        allowed = {t for t in (self.write_token, repo.write_token, repo.gated_token) if t} if repo else set()
        if repo is None or (repo.private and token not in allowed):
            status = 401 if repo is not None and token is None else 404
            raise HubHttpError(status, "RepoNotFound", "Repository not found")
        if file_access and repo.gated_token and token not in allowed:
            if token is None:
                msg = (
                    f"Access to model {repo_id} is restricted. You must have access to it and be authenticated"
                    " to access it. Please log in."
                )
                raise HubHttpError(401, "GatedRepo", msg)
            msg = f"Access to model {repo_id} is restricted and you are not in the authorized list."
            raise HubHttpError(403, "GatedRepo", msg)
        return repo

    def _check_write(self, token: str | None, repo: Repo | None) -> None:
        if token is None or token not in self._known_tokens():
            raise HubHttpError(401, None, "Invalid credentials in Authorization header")
        if token not in {self.write_token, repo.write_token if repo else None}:
            raise HubHttpError(403, None, "You don't have the rights to write to this repository")

    def _take_failure(self, path: str) -> int | None:
        with self._lock:
            if self._fail_left > 0 and (self._fail_match is None or self._fail_match in path):
                self._fail_left -= 1
                return self._fail_status
        return None

    def _take_drop(self) -> int | None:
        with self._lock:
            self._file_gets += 1
            if self._drop_n <= 0 or self._file_gets % self._drop_n or self._drop_left == 0:
                return None
            if self._drop_left is not None:
                self._drop_left -= 1
            return self._drop_after

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.bytes_sent += n
            self.bytes_by_path[key] = self.bytes_by_path.get(key, 0) + n

    # ---- internals: JSON answers -----------------------------------------------------------
    def _model_info(self, repo: Repo, commit: Commit, blobs: bool) -> dict[str, Any]:
        siblings = []
        for path, b in sorted(commit.files.items()):
            entry: dict[str, Any] = {"rfilename": path}
            if blobs:
                entry |= {"size": b.size, "blobId": b.git_oid}
                if b.lfs:
                    entry["lfs"] = {"size": b.size, "sha256": b.sha256, "pointerSize": 134}
            siblings.append(entry)
        info: dict[str, Any] = {
            "_id": repo.refs["main"][:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": repo.gated_mode if repo.gated_mode is not None else ("manual" if repo.gated_token else False),
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(b.size for b in commit.files.values()),
        }
        card = _card_data(commit.files.get("README.md"))
        if card:
            info["cardData"] = card
            if "license" in card:
                info["tags"].append(f"license:{card['license']}")
        config = _read_json(commit.files.get("config.json"))
        if isinstance(config, dict):
            info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
            info["library_name"] = "transformers"
            info["tags"].append("transformers")
        return info

    def _tree(self, commit: Commit, base: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
        base = base.strip("/")
        prefix = f"{base}/" if base else ""
        dirs: set[str] = set()
        files = []
        for path, blob in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for i in range(1, len(parts) if recursive else min(2, len(parts))):
                dirs.add(prefix + "/".join(parts[:i]))
            if recursive or len(parts) == 1:
                files.append(_file_entry(path, blob))
        if base and not files and not dirs:
            raise HubHttpError(404, "EntryNotFound", f"{base} does not exist on this revision")
        entries = [{"type": "directory", "oid": _sha1(f"tree:{commit.sha}:{d}"), "path": d} for d in sorted(dirs)]
        entries += files
        if expand:
            for e in entries:
                e["lastCommit"] = {"id": commit.sha, "title": commit.title, "date": commit.date}
        return entries


def _file_entry(path: str, blob: Blob) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
    return entry


def _read_json(blob: Blob | None) -> Any:
    try:
        return json.loads(blob.source.read_text()) if blob else None
    except (OSError, ValueError):
        return None


def _card_data(blob: Blob | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    import yaml  # PyYAML, a huggingface_hub dependency

    m = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", blob.source.read_text(errors="replace"), re.S)
    try:
        data = yaml.safe_load(m[1]) if m else None
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads must not block stop()
    hub: HubServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end after a minute
    server: _Httpd

    def setup(self) -> None:
        super().setup()
        with self.server.hub._lock:
            self.server.hub._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.hub._lock:
            self.server.hub._connections.discard(self.connection)
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
        try:
            body = self._read_body() if method in ("POST", "PUT") else b""
            failure = hub._take_failure(path)
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
            with hub._lock:
                hub.log.append(
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
        n = _repo_id_len(parts[1:], hub.repos)
        repo_id = "/".join(unquote(p) for p in parts[1 : 1 + n])
        verb, rest = (parts[1 + n], [unquote(p) for p in parts[2 + n :]]) if len(parts) > 1 + n else (None, [])
        writing = verb in ("preupload", "commit", "settings")
        if writing:
            with hub._lock:
                repo = hub.repos.get(repo_id)
                hub._check_write(self._token, repo)
            if repo is None:
                raise HubHttpError(404, "RepoNotFound", "Repository not found")
        else:
            repo = hub._repo_for_read(repo_id, self._token, file_access=False)
        blobs = self._flag("blobs")
        if verb is None and method == "GET":
            return self._send_json(hub._model_info(repo, hub._resolve_revision(repo, "main"), blobs))
        if verb == "revision" and rest and method == "GET":
            return self._send_json(hub._model_info(repo, hub._resolve_revision(repo, rest[0]), blobs))
        if verb == "tree" and rest and method == "GET":
            commit = hub._resolve_revision(repo, rest[0])
            return self._send_json(hub._tree(commit, "/".join(rest[1:]), self._flag("recursive"), self._flag("expand")))
        if verb == "paths-info" and rest and method == "POST":
            commit = hub._resolve_revision(repo, rest[0])
            wanted = parse_qs(body.decode())
            return self._send_json(_paths_info(commit, wanted.get("paths", [])))
        if verb == "refs" and method == "GET":
            return self._send_json(_refs(repo))
        if verb == "preupload" and rest and method == "POST":
            return self._preupload(repo, rest[0], body)
        if verb == "commit" and rest and method == "POST":
            return self._commit(repo, rest[0], body)
        if verb == "settings" and method == "PUT":  # update_repo_settings: recorded, gated/private applied
            settings = json.loads(body or b"{}")
            with hub._lock:
                hub.settings_calls.append((repo.repo_id, settings))
                if "gated" in settings:
                    repo.gated_mode = settings["gated"]
                if "private" in settings:
                    repo.private = bool(settings["private"])
            return self._send_json({})
        raise HubHttpError(404, None, f"Not found: /api/{'/'.join(parts)}")

    def _whoami(self) -> None:
        hub = self.server.hub
        if self._token is None or self._token not in hub._known_tokens():
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
        hub._check_write(self._token, None)
        payload = json.loads(body or b"{}")
        if payload.get("type", "model") not in (None, "model"):
            raise HubHttpError(400, None, "The test hub only serves model repos")
        name, org = payload.get("name"), payload.get("organization")
        if not name:
            raise HubHttpError(400, None, "Missing repo name")
        repo_id = f"{org or hub.user}/{name}"
        url = f"{hub.url}/{repo_id}"
        with hub._lock:
            if repo_id in hub.repos:
                raise HubHttpError(409, None, "You already created this model repo", body={"url": url})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            hub.add_repo(repo_id, {}, sha=_sha1(f"hub-server:created:{repo_id}"), private=private)
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _preupload(self, repo: Repo, revision: str, body: bytes) -> None:
        hub = self.server.hub
        commit = hub._resolve_revision(repo, revision)
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
        with hub._lock:
            files = repo.commits[repo.refs[branch]].files
            for item in lines:
                key, value = item.get("key"), item.get("value", {})
                if key == "header":
                    title = value.get("summary") or title
                    parent = value.get("parentCommit")
                    if parent and parent != repo.refs[branch]:
                        raise HubHttpError(412, None, "A commit has happened since. Please refresh and try again.")
                elif key == "file":
                    adds[value["path"]] = hub._store_bytes(value["path"], base64.b64decode(value["content"]))
                elif key in ("deletedFile", "deletedFolder"):
                    path = value["path"].rstrip("/")
                    hit = [p for p in files if p == path or (key == "deletedFolder" and p.startswith(path + "/"))]
                    if not hit:
                        raise HubHttpError(404, "EntryNotFound", "A file with this name doesn't exist")
                    deletes += hit
                else:
                    raise HubHttpError(400, None, f"Unsupported commit operation {key!r} (no LFS on the test hub)")
            sha = hub._commit(repo, branch, adds, deletes, title)
        commit_url = f"{hub.url}/{repo.repo_id}/commit/{sha}"
        self._send_json({"success": True, "commitOid": sha, "commitUrl": commit_url, "pullRequestUrl": None})

    # ---- /{repo}/resolve/{rev}/{path} --------------------------------------------------------
    def _resolve(self, method: str, raw_parts: list[str]) -> None:
        hub = self.server.hub
        n = raw_parts.index("resolve")
        repo_id = "/".join(unquote(p) for p in raw_parts[:n])
        repo = hub._repo_for_read(repo_id, self._token, file_access=True)
        if len(raw_parts) < n + 3:
            raise HubHttpError(404, "EntryNotFound", "Missing file path")
        commit = hub._resolve_revision(repo, unquote(raw_parts[n + 1]))
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
        except _Unsatisfiable:
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
        drop_after = hub._take_drop()
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
                hub._count(key, len(chunk))
        if drop_after is not None and drop_after < length:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


def _repo_id_len(parts: list[str], repos: Mapping[str, Repo]) -> int:
    """How many leading path segments form the repo id (1 for canonical ids like `gpt2`, else 2)."""
    if len(parts) == 1 or (unquote("/".join(parts[:2])) not in repos and parts[1] in _API_VERBS):
        return 1
    return 2


def _paths_info(commit: Commit, paths: list[str]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        path = path.strip("/")
        if path in commit.files:
            out.append(_file_entry(path, commit.files[path]))
        elif any(p.startswith(path + "/") for p in commit.files):
            out.append({"type": "directory", "oid": _sha1(f"tree:{commit.sha}:{path}"), "path": path})
    return out


def _refs(repo: Repo) -> dict[str, Any]:
    branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in sorted(repo.refs.items())]
    return {"branches": branches, "converts": [], "tags": [], "pullRequests": []}


def point_hf_hub_at(server: HubServer, monkeypatch: Any, hf_home: str | Path) -> None:
    """Point huggingface_hub at `server` for one test: env vars and the constants read at import time.

    Caches and token files go under `hf_home`; HF_TOKEN is cleared; telemetry, Xet and offline mode are off.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_assets, _cache_manager

    home = Path(hf_home)
    hub_cache, assets, xet, token_path = home / "hub", home / "assets", home / "xet", home / "token"
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HUGGINGFACE_CO_STAGING", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(assets),
        "HF_XET_CACHE": str(xet),
        "HF_TOKEN_PATH": str(token_path),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    patches: dict[str, Any] = {
        "ENDPOINT": server.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(assets),
        "HUGGINGFACE_ASSETS_CACHE": str(assets),
        "HF_XET_CACHE": str(xet),
        "HF_TOKEN_PATH": str(token_path),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_XET": True,
    }
    for k, v in patches.items():
        monkeypatch.setattr(constants, k, v)
    monkeypatch.setattr(hf_api.api, "endpoint", server.url)  # module-level HfApi() behind huggingface_hub.model_info
    monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(_cache_assets, "HF_ASSETS_CACHE", str(assets))
