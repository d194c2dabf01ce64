"""A loopback Hugging Face Hub for tests: the REAL `huggingface_hub` client talks to it over HTTP.

`HubServer` serves model repos (from folders or in-memory bytes) on 127.0.0.1 with the endpoints and
headers the client reads: `/api/models/{repo}[/revision/{rev}]`, `/tree/`, `/paths-info/`, `/refs`,
`HEAD|GET /{repo}/resolve/{rev}/{path}` (ETag, X-Repo-Commit, Range -> 206/416), and the upload path
(`/api/repos/create`, `/preupload/` answering "regular" for every file, `/commit/` with inline base64).
Errors carry the `X-Error-Code` headers that make `hf_raise_for_status` raise `RepositoryNotFoundError`,
`GatedRepoError`, `RevisionNotFoundError` and `EntryNotFoundError`.

It counts body bytes of file GETs and logs every request, and it injects faults: bodies cut short
(`drop_every`), files changed between requests (`replace_file`), error statuses (`fail_next`).
`point_hf_hub_at(server, monkeypatch, hf_home)` (hub_client.py) points huggingface_hub (constants cached at import
time included) at the server, with caches and token files under `hf_home` and Xet disabled.

Semantics follow the Hub: gated repos list their files and info publicly, only `resolve` needs the
token (none: 401, wrong: 403, both `GatedRepo`). Files ending in `LFS_SUFFIXES` are LFS files (ETag =
sha256, `X-Linked-Etag`/`X-Linked-Size`, `lfs` in tree listings); others use the git blob sha1.
A folder given to `add_repo` is hashed once and served from where it is: do not modify it afterwards
(use `replace_file`).

Split by idea: hub_repo.py (repo state, JSON shapes), hub_faults.py (fault injection), hub_handler.py (HTTP
handler, which calls only this server's public methods), hub_client.py (client patching); this module is the
server itself and re-exports what tests import (`from hub_server import HubServer, point_hf_hub_at`).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping

from hub_client import point_hf_hub_at
from hub_faults import Faults
from hub_handler import Handler, Httpd
from hub_repo import (
    LFS_SUFFIXES,
    USER,
    WRITE_TOKEN,
    Blob,
    Commit,
    FileSource,
    HubHttpError,
    Repo,
    RequestRecord,
    card_data,
    file_entry,
    hash_file,
    now_iso,
    parse_range,
    read_json_blob,
    sha1_hex,
)

__all__ = ["HubServer", "point_hf_hub_at", "parse_range", "Blob", "Commit", "Repo", "RequestRecord", "HubHttpError",
           "LFS_SUFFIXES", "USER", "WRITE_TOKEN", "FileSource"]


class HubServer:
    """Hub-compatible HTTP server on 127.0.0.1 (port 0) in a daemon thread. See the module docstring."""

    def __init__(self, *, write_token: str = WRITE_TOKEN, user: str = USER):
        self.write_token, self.user = write_token, user
        self.repos: dict[str, Repo] = {}
        self.bytes_sent = 0
        self.bytes_by_path: dict[str, int] = {}  # "repo_id/filename" -> file body bytes sent
        self._log: list[RequestRecord] = []
        self.settings_calls: list[tuple[str, dict[str, Any]]] = []  # (repo_id, body) of each update_repo_settings
        self.lock = threading.RLock()
        # requests being answered: the log is read once they are done (a client can hold every byte of a
        # response before its handler has logged it)
        self.in_flight = 0
        self.idle = threading.Condition(self.lock)
        self._tmp: Path | None = None
        self._httpd: Httpd | None = None
        self._thread: threading.Thread | None = None
        self.connections: set[socket.socket] = set()
        self._commit_counter = 0
        self.faults = Faults()
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
            self._httpd = Httpd(("127.0.0.1", 0), Handler)
            self._httpd.hub = self
            serve = self._httpd.serve_forever
            self._thread = threading.Thread(target=serve, args=(0.05,), name="hub-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self.faults.released.set()  # handlers held by a stall fault end now
        self._httpd.shutdown()
        with self.lock:
            for conn in list(self.connections):  # wake handler threads blocked on keep-alive reads
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
        sha = sha or sha1_hex(f"hub-server:{repo_id}")
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise ValueError(f"sha must be 40 lowercase hex digits, got {sha!r}")
        date = now_iso()
        repo = Repo(repo_id, {"main": sha}, {}, private, gated_token, write_token, date)
        repo.commits[sha] = Commit(sha, self._load_files(folder), "Initial commit", date)
        for name, source in (revisions or {}).items():
            if source is None:
                repo.refs[name] = sha
            else:
                rev_sha = sha1_hex(f"hub-server:{repo_id}@{name}")
                repo.commits[rev_sha] = Commit(rev_sha, self._load_files(source), f"Branch {name}", date)
                repo.refs[name] = rev_sha
        with self.lock:
            self.repos[repo_id] = repo
        return sha

    def head(self, repo_id: str, revision: str = "main") -> str:
        """Commit sha that `revision` resolves to."""
        return self.resolve_revision(self.repos[repo_id], revision).sha

    def etag(self, repo_id: str, filename: str, revision: str = "main") -> str:
        """Unquoted ETag the server sends for that file."""
        return self.resolve_revision(self.repos[repo_id], revision).files[filename].etag

    def replace_file(
        self, repo_id: str, filename: str, data: bytes, *, revision: str = "main", new_commit: bool = True
    ) -> str:
        """Change (or add) a file: new content, new ETag. Returns the sha now serving it.

        new_commit=True (the Hub's way): a new commit on branch `revision`; the old sha keeps the old bytes.
        new_commit=False: the bytes change in place under the same sha (an inconsistent server/CDN).
        """
        blob = self.store_bytes(filename, data)
        with self.lock:
            repo = self.repos[repo_id]
            if new_commit:
                return self.commit_files(repo, revision, {filename: blob}, [], f"Update {filename}")
            commit = self.resolve_revision(repo, revision)
            commit.files[filename] = blob
            return commit.sha

    # ---- instrumentation and faults --------------------------------------------------------
    def reset_counters(self) -> None:
        with self.lock:
            self.bytes_sent = 0
            self.bytes_by_path.clear()
            self._log.clear()
        self.faults.restart_count()

    def bytes_for(self, repo_id: str, filename: str) -> int:
        return self.bytes_by_path.get(f"{repo_id}/{filename}", 0)

    def request_started(self) -> None:
        with self.lock:
            self.in_flight += 1

    def request_done(self, record: RequestRecord) -> None:
        with self.lock:
            self._log.append(record)
            self.in_flight -= 1
            self.idle.notify_all()

    @property
    def log(self) -> list[RequestRecord]:
        """Every request answered since the last reset, once the handlers still answering have logged theirs."""
        with self.lock:
            self.idle.wait_for(lambda: self.in_flight == 0, timeout=10)
            return list(self._log)

    def requests(self, method: str | None = None, path_contains: str | None = None) -> list[RequestRecord]:
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (path_contains is None or path_contains in r.path)
            ]

    def drop_every(self, n: int, after_bytes: int = 0, *, times: int | None = None) -> None:
        """Every n-th file GET (counted from now) sends full headers, `after_bytes` body bytes, then closes.

        n=0 turns it off; `times` caps the number of drops.
        """
        self.faults.drop_every(n, after_bytes, times=times)

    def fail_next(self, k: int = 1, status: int = 500, *, path_contains: str | None = None) -> None:
        """Answer the next k requests (whose path contains `path_contains`, if given) with `status`."""
        self.faults.fail_next(k, status, path_contains=path_contains)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ---- internals: storage ----------------------------------------------------------------
    def _load_files(self, source: FileSource | None) -> dict[str, Blob]:
        if source is None:
            return {}
        if isinstance(source, Mapping):
            return {name: self.store_bytes(name, data) for name, data in source.items()}
        root = Path(source)
        return {
            p.relative_to(root).as_posix(): hash_file(p, p.name)
            for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts
        }

    def store_bytes(self, name: str, data: bytes) -> Blob:
        assert self._tmp is not None, "start() the server first"
        digest = hashlib.sha256(data).hexdigest()
        path = self._tmp / "blobs" / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(data)
        return hash_file(path, name)

    def commit_files(self, repo: Repo, branch: str, adds: dict[str, Blob], deletes: list[str], title: str) -> str:
        with self.lock:
            parent = repo.commits[repo.refs[branch]]
            files = dict(parent.files)
            for path in deletes:
                files.pop(path)
            files.update(adds)
            self._commit_counter += 1
            sha = sha1_hex(f"{parent.sha}:{self._commit_counter}:{sorted((p, b.git_oid) for p, b in files.items())}")
            repo.commits[sha] = Commit(sha, files, title, now_iso())
            repo.refs[branch] = sha
            return sha

    def resolve_revision(self, repo: Repo, revision: str) -> Commit:
        sha = repo.refs.get(revision)
        if sha is None and re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [s for s in repo.commits if s.startswith(revision)]
            sha = matches[0] if len(matches) == 1 else None
        if sha is None:
            raise HubHttpError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo.commits[sha]

    # ---- internals: access -----------------------------------------------------------------
    def known_tokens(self) -> set[str]:
        tokens = {self.write_token}
        for repo in self.repos.values():
            tokens |= {t for t in (repo.write_token, repo.gated_token) if t}
        return tokens

    def repo_for_read(self, repo_id: str, token: str | None, *, file_access: bool) -> Repo:
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

    def check_write(self, token: str | None, repo: Repo | None) -> None:
        if token is None or token not in self.known_tokens():
            raise HubHttpError(401, None, "Invalid credentials in Authorization header")
        if token not in {self.write_token, repo.write_token if repo else None}:
            raise HubHttpError(403, None, "You don't have the rights to write to this repository")

    def count(self, key: str, n: int) -> None:
        with self.lock:
            self.bytes_sent += n
            self.bytes_by_path[key] = self.bytes_by_path.get(key, 0) + n

    # ---- internals: JSON answers -----------------------------------------------------------
    def apply_settings(self, repo: Repo, settings: dict[str, Any]) -> None:
        """PUT /api/models/REPO/settings (update_repo_settings): recorded; gated and private applied."""
        with self.lock:
            self.settings_calls.append((repo.repo_id, settings))
            if "gated" in settings:
                repo.gated_mode = settings["gated"]
            if "private" in settings:
                repo.private = bool(settings["private"])

    def model_info(self, repo: Repo, commit: Commit, blobs: bool) -> dict[str, Any]:
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
        card = card_data(commit.files.get("README.md"))
        if card:
            info["cardData"] = card
            if "license" in card:
                info["tags"].append(f"license:{card['license']}")
        config = read_json_blob(commit.files.get("config.json"))
        if isinstance(config, dict):
            info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
            info["library_name"] = "transformers"
            info["tags"].append("transformers")
        return info

    def tree(self, commit: Commit, base: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
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
                files.append(file_entry(path, blob))
        if base and not files and not dirs:
            raise HubHttpError(404, "EntryNotFound", f"{base} does not exist on this revision")
        entries = [{"type": "directory", "oid": sha1_hex(f"tree:{commit.sha}:{d}"), "path": d} for d in sorted(dirs)]
        entries += files
        if expand:
            for e in entries:
                e["lastCommit"] = {"id": commit.sha, "title": commit.title, "date": commit.date}
        return entries


