"""The loopback Hub's repo state: blobs, commits, repos, request records, error answers, Range parsing, and the
JSON shapes the Hub answers with (pure data; no HTTP here)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

WRITE_TOKEN = "hf_test_write_token"
USER = "test-user"
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx", ".msgpack", ".h5", ".npz")
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
    started: float = 0.0  # time.time() when the request line arrived
    ended: float = 0.0  # time.time() when the answer was written


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


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b` / `a-` / `-n` -> inclusive (start, end); None = serve the whole file; raises Unsatisfiable."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None or (m[1] == "" and m[2] == ""):
        return None  # invalid or multi-range: ignored, as RFC 9110 allows
    if m[1] == "":
        n = int(m[2])
        if n == 0 or size == 0:
            raise Unsatisfiable
        return max(size - n, 0), size - 1
    start = int(m[1])
    if m[2] and int(m[2]) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    end = int(m[2]) if m[2] else size - 1
    return start, min(end, size - 1)


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def hash_file(path: Path, name: str) -> Blob:
    size = path.stat().st_size
    sha1 = hashlib.sha1(f"blob {size}\0".encode())
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return Blob(path, size, sha1.hexdigest(), sha256.hexdigest(), name.endswith(LFS_SUFFIXES))



def file_entry(path: str, blob: Blob) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
    return entry


def read_json_blob(blob: Blob | None) -> Any:
    try:
        return json.loads(blob.source.read_text()) if blob else None
    except (OSError, ValueError):
        return None


def card_data(blob: Blob | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    import yaml  # PyYAML, a huggingface_hub dependency

    m = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", blob.source.read_text(errors="replace"), re.S)
    try:
        data = yaml.safe_load(m[1]) if m else None
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def paths_info(commit: Commit, paths: list[str]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        path = path.strip("/")
        if path in commit.files:
            out.append(file_entry(path, commit.files[path]))
        elif any(p.startswith(path + "/") for p in commit.files):
            out.append({"type": "directory", "oid": sha1_hex(f"tree:{commit.sha}:{path}"), "path": path})
    return out


def refs_json(repo: Repo) -> dict[str, Any]:
    branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in sorted(repo.refs.items())]
    return {"branches": branches, "converts": [], "tags": [], "pullRequests": []}


