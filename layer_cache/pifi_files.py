"""What pifi wrote: each cache file recognised by its exact name AND its content, read without following links.

pifi deletes (:mod:`.tidy`) and adopts (:mod:`.ownership`) only files these predicates accept:

* an artifact ``layer-N[.dt].safetensors`` whose safetensors header carries pifi's ``pifi.format`` metadata,
  or, for one whose header is damaged, that has pifi's integrity memo of its exact size beside it;
* a memo ``.layer-N….pifi-ok`` / origin record ``.layer-N….pifi-origin``: a JSON object with pifi's keys;
* ``model.json``: a JSON object naming the source that its folder is named after;
* a ref ``refs/<revision>``: a few bytes holding one commit name (what :meth:`LayerCache.write_ref` writes);
* a temp file ``.<name>.pifi-tmp-<pid>-<8 hex>`` (the writer's unique pattern).

Everything is read through ``lstat`` and ``O_NOFOLLOW``: a link is never a pifi file.
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any

from pifi_extract.writer import TMP_MARKER

from .layout import ARTIFACT_RE, MEMO_SUFFIX, MODEL_JSON, ORIGIN_SUFFIX, SAFE_COMMIT, source_dir_name

TEMP_RE = re.compile(r"^\.(?P<base>.+)" + re.escape(TMP_MARKER) + r"(?P<pid>\d+)-[0-9a-f]{8}$")
MEMO_RE = re.compile(  # integrity memo or origin record of an artifact
    r"^\.(?P<artifact>layer-\d+(?:\.(?:bf16|fp16|fp32))?\.safetensors)(?P<suffix>"
    + re.escape(MEMO_SUFFIX) + "|" + re.escape(ORIGIN_SUFFIX) + ")$"
)
MEMO_KEYS = {MEMO_SUFFIX: {"size", "mtime_ns", "data_sha256"}, ORIGIN_SUFFIX: {"pulled_from", "commit"}}
SMALL_FILE = 1 << 20  # memos, records and refs are a few hundred bytes
MAX_HEADER = 16 << 20  # a pifi artifact's header is a few KB


def lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def is_dir(path: Path) -> bool:
    st = lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def is_file(path: Path) -> bool:
    st = lstat(path)
    return st is not None and stat.S_ISREG(st.st_mode)


def names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _read(path: Path, limit: int, offset: int = 0) -> bytes | None:
    """Up to ``limit`` bytes of a regular file (never through a link), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.pread(fd, limit, offset)
    except OSError:
        return None
    finally:
        os.close(fd)


def _json_object(path: Path) -> dict[str, Any] | None:
    data = _read(path, SMALL_FILE + 1)
    if data is None or len(data) > SMALL_FILE:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def has_pifi_header(path: Path) -> bool:
    """The file is a safetensors file whose ``__metadata__`` says it is a pifi artifact."""
    prefix = _read(path, 8)
    if prefix is None or len(prefix) != 8:
        return False
    (n,) = struct.unpack("<Q", prefix)
    raw = _read(path, n, 8) if 0 < n <= MAX_HEADER else None
    if raw is None or len(raw) != n:
        return False
    try:
        header = json.loads(raw)
    except ValueError:
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and isinstance(meta.get("pifi.format"), str)


def is_pifi_side_file(path: Path) -> bool:
    """A memo or origin record of pifi's (name and JSON keys)."""
    m = MEMO_RE.match(path.name)
    obj = _json_object(path) if m else None
    return obj is not None and MEMO_KEYS[m["suffix"]] <= obj.keys()  # type: ignore[index]


def is_pifi_artifact(path: Path) -> bool:
    """An artifact name, and a pifi header or (header damaged) pifi's memo of this exact size beside it."""
    if not ARTIFACT_RE.match(path.name) or not is_file(path):
        return False
    if has_pifi_header(path):
        return True
    memo = path.with_name(f".{path.name}{MEMO_SUFFIX}")
    record = _json_object(memo) if is_pifi_side_file(memo) else None
    st = lstat(path)
    return record is not None and st is not None and record.get("size") == st.st_size


def is_pifi_model_record(path: Path) -> bool:
    """``<source dir>/<commit>/model.json`` naming the source its folder is named after."""
    obj = _json_object(path) if path.name == MODEL_JSON else None
    if obj is None or not isinstance(obj.get("source"), str) or obj.get("kind") not in ("hub", "local"):
        return False
    return source_dir_name(obj["source"], obj["kind"]) == path.parent.parent.name


def ref_commit(path: Path) -> str | None:
    """The commit a ref file names, when its content is exactly one commit name (what pifi writes), else None."""
    data = _read(path, 129)
    if data is None or len(data) > 128:
        return None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return text if SAFE_COMMIT.match(text) else None


def temp_file_sizes(folder: Path) -> list[tuple[Path, int]]:
    """(path, size on disk) of the temp files (regular files of the temp pattern) in ``folder``."""
    out = []
    for name in names(folder):
        st = lstat(folder / name)
        if TEMP_RE.match(name) and st is not None and stat.S_ISREG(st.st_mode):
            out.append((folder / name, st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size))
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stale_temp_files(folder: Path, *, now: float, min_age_s: float = 3600.0) -> list[Path]:
    """Temp files of dead local writers untouched for ``min_age_s`` (regular files only)."""
    out = []
    for name in names(folder):
        m = TEMP_RE.match(name)
        st = lstat(folder / name)
        if m is None or st is None or not stat.S_ISREG(st.st_mode):
            continue
        if not pid_alive(int(m["pid"])) and now - st.st_mtime >= min_age_s:
            out.append(folder / name)
    return out
