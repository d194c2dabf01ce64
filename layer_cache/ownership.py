"""What pifi may delete: only its own names, only under a folder it marked as its cache, never through a link.

A cache root is *pifi's* when it holds the marker pifi writes when it creates it (``.pifi-cache``,
next to a standard ``CACHEDIR.TAG`` so backup tools skip it). A root without the marker is adopted
(marked) only when everything in it already has a pifi shape (``models--*``/``local--*`` folders of
commit folders of artifacts, memos, ``model.json``, temp files, ``refs/``; ``.locks``, ``.incoming``):
a cache written by an older pifi. Anything else (a typo in ``PIFI_CACHE``, ``$HOME``) is refused.

Removal is planned first (:func:`plan_tidy`), from ``lstat`` only, so ``--dry-run`` shows exactly what
a real run removes; :func:`apply` then unlinks files by exact pattern and ``rmdir``s folders that
became empty. No tree is ever removed whole, and no symbolic link is followed.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path
from typing import Iterable

from pifi_extract.errors import CacheError
from pifi_extract.writer import TMP_MARKER

from .layout import (
    ARTIFACT_RE,
    HUB_PREFIX,
    INCOMING_DIR,
    LOCAL_PREFIX,
    LOCKS_DIR,
    MEMO_SUFFIX,
    MODEL_JSON,
    ORIGIN_SUFFIX,
    REFS_DIR,
)

TAG_NAME = "CACHEDIR.TAG"
MARKER_NAME = ".pifi-cache"
TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
TAG_TEXT = (
    f"{TAG_SIGNATURE}\n# This file is a cache directory tag created by pifi (layer cache).\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
MARKER_TEXT = '{"pifi_cache": 1}\n'
TEMP_RE = re.compile(r"^\.(?P<base>.+)" + re.escape(TMP_MARKER) + r"(?P<pid>\d+)-[0-9a-f]+$")
MEMO_RE = re.compile(  # integrity memo or origin record of an artifact
    r"^\.(?P<artifact>layer-\d+(?:\.(?:bf16|fp16|fp32))?\.safetensors)(?:"
    + re.escape(MEMO_SUFFIX) + "|" + re.escape(ORIGIN_SUFFIX) + ")$"
)
_ROOT_NAMES = {TAG_NAME, MARKER_NAME, LOCKS_DIR, INCOMING_DIR}


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _is_dir(path: Path) -> bool:
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _is_file(path: Path) -> bool:
    st = _lstat(path)
    return st is not None and stat.S_ISREG(st.st_mode)


def _names(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def is_marked(root: Path) -> bool:
    return _is_file(root / MARKER_NAME)


def write_marker(root: Path) -> None:
    """Tag ``root`` as a pifi cache (best effort: a read-only shared cache stays as it is)."""
    for name, text in ((TAG_NAME, TAG_TEXT), (MARKER_NAME, MARKER_TEXT)):
        path = root / name
        if _lstat(path) is None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
            except OSError:
                pass


def is_pifi_file_name(name: str) -> bool:
    """An artifact, memo, model record or temp file name (what a commit folder may hold)."""
    return bool(ARTIFACT_RE.match(name) or MEMO_RE.match(name) or TEMP_RE.match(name) or name == MODEL_JSON)


def looks_like_pifi_cache(root: Path) -> bool:
    """True when every entry of ``root`` (two levels down, without following links) has a pifi shape."""
    for name in _names(root):
        path = root / name
        if name in _ROOT_NAMES:
            continue
        if not name.startswith((HUB_PREFIX, LOCAL_PREFIX)) or not _is_dir(path):
            return False
        for sub in _names(path):
            commit_dir = path / sub
            if not _is_dir(commit_dir):
                return False
            if sub == REFS_DIR:
                continue
            if not all(is_pifi_file_name(n) and _is_file(commit_dir / n) for n in _names(commit_dir)):
                return False
    return True


def claim(root: Path, *, created: bool = False) -> bool:
    """Mark ``root`` as pifi's if pifi just ``created`` it or it looks like a pifi cache; True if it is pifi's."""
    if is_marked(root):
        return True
    if created or (_is_dir(root) or root.is_dir()) and looks_like_pifi_cache(root):
        write_marker(root)
        return True
    return False


def require_owned(root: Path) -> None:
    """Raise :class:`CacheError` unless ``root`` is a pifi cache (marked, or adoptable as one)."""
    if not root.exists() or claim(root):
        return
    raise CacheError(
        f"{root} is not a pifi cache folder (no {MARKER_NAME} marker, and it holds files pifi did not write); "
        "pifi deletes nothing there",
        "check --cache-dir / PIFI_CACHE; a real pifi cache is tagged with CACHEDIR.TAG and .pifi-cache",
    )


def linked_part(root: Path, path: Path) -> Path | None:
    """The first component of ``path`` below ``root`` that is a symbolic link (or not there), else None."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path
    current = root
    for part in rel.parts:
        current = current / part
        st = _lstat(current)
        if st is None or stat.S_ISLNK(st.st_mode):
            return current
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def source_dirs(root: Path) -> list[Path]:
    """pifi's source folders of ``root`` (real folders, links not followed)."""
    return [root / n for n in _names(root) if n.startswith((HUB_PREFIX, LOCAL_PREFIX)) and _is_dir(root / n)]


def commit_dirs(source_dir: Path) -> list[Path]:
    return [source_dir / n for n in _names(source_dir) if n != REFS_DIR and _is_dir(source_dir / n)]


def temp_file_sizes(folder: Path) -> list[tuple[Path, int]]:
    """(path, size) of the temp files (regular files of the temp pattern) in ``folder``."""
    out = []
    for name in _names(folder):
        st = _lstat(folder / name)
        if TEMP_RE.match(name) and st is not None and stat.S_ISREG(st.st_mode):
            out.append((folder / name, st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size))
    return out


def stale_temp_files(folder: Path, *, now: float, min_age_s: float = 3600.0) -> list[Path]:
    """Temp files of dead local writers untouched for ``min_age_s`` (regular files only)."""
    out = []
    for name in _names(folder):
        m = TEMP_RE.match(name)
        st = _lstat(folder / name)
        if m is None or st is None or not stat.S_ISREG(st.st_mode):
            continue
        if not _pid_alive(int(m["pid"])) and now - st.st_mtime >= min_age_s:
            out.append(folder / name)
    return out


def plan_tidy(root: Path, artifacts: Iterable[Path] = (), *, now: float | None = None) -> list[Path]:
    """Every path a removal of ``artifacts`` plus a sweep removes, files first, then folders (deepest first).

    Only pifi names are planned: the artifacts and their memos, stale temp files, the ``model.json``
    of a commit folder left without artifacts, refs naming a removed commit, and folders that are
    empty once those go. Raises :class:`CacheError` for a root that is not pifi's, or an artifact
    reached through a symbolic link.
    """
    now = time.time() if now is None else now
    require_owned(root)
    gone: set[Path] = set()
    files: list[Path] = []
    dirs: list[Path] = []

    def drop(path: Path, *, folder: bool = False) -> None:
        if path not in gone:
            gone.add(path)
            (dirs if folder else files).append(path)

    for art in artifacts:
        link = linked_part(root, art)
        if link is not None or not ARTIFACT_RE.match(art.name) or not _is_file(art):
            raise CacheError(
                f"{art} is reached through a symbolic link ({link}) or is not a pifi artifact; pifi does not delete it",
                "remove it at its real place yourself",
            )
        drop(art)
        for suffix in (MEMO_SUFFIX, ORIGIN_SUFFIX):
            side = art.with_name(f".{art.name}{suffix}")
            if _is_file(side):
                drop(side)

    for tmp in stale_temp_files(root / INCOMING_DIR, now=now) if _is_dir(root / INCOMING_DIR) else []:
        drop(tmp)
    for name in _names(root):
        source_dir = root / name
        if name.startswith((HUB_PREFIX, LOCAL_PREFIX)) and _is_dir(source_dir):
            _plan_source(source_dir, now, gone, drop)
    return files + dirs


def _plan_source(source_dir: Path, now: float, gone: set[Path], drop) -> None:
    surviving: set[str] = set()
    for sub in _names(source_dir):
        commit_dir = source_dir / sub
        if sub == REFS_DIR or not _is_dir(commit_dir):
            continue
        for tmp in stale_temp_files(commit_dir, now=now):
            drop(tmp)
        names = [n for n in _names(commit_dir) if commit_dir / n not in gone]
        for n in names:
            m = MEMO_RE.match(n)
            if m and not _is_file(commit_dir / m["artifact"]) or (m and commit_dir / m["artifact"] in gone):
                drop(commit_dir / n)
        left = [n for n in _names(commit_dir) if commit_dir / n not in gone]
        if any(ARTIFACT_RE.match(n) or TEMP_RE.match(n) for n in left):
            surviving.add(sub)
            continue
        if MODEL_JSON in left and _is_file(commit_dir / MODEL_JSON):
            drop(commit_dir / MODEL_JSON)
            left.remove(MODEL_JSON)
        if not left:
            drop(commit_dir, folder=True)
        else:
            surviving.add(sub)  # holds something pifi did not write: kept, and so are its refs
    refs = source_dir / REFS_DIR
    if _is_dir(refs):
        for folder, subdirs, names in os.walk(refs, topdown=False, followlinks=False):
            here = Path(folder)
            for n in names:
                path = here / n
                if n.startswith(".") or not _is_file(path):
                    continue
                try:
                    commit = path.read_text().strip()
                except (OSError, ValueError):
                    continue
                if commit not in surviving:
                    drop(path)
            if all(here / n in gone for n in _names(here)):
                drop(here, folder=True)
    if all(source_dir / n in gone for n in _names(source_dir)):
        drop(source_dir, folder=True)


def apply(paths: Iterable[Path]) -> list[Path]:
    """Remove planned paths: unlink regular files, ``rmdir`` folders (kept if not empty); links are never touched."""
    removed = []
    for path in paths:
        st = _lstat(path)
        if st is None or stat.S_ISLNK(st.st_mode):
            continue
        try:
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(path)
            elif stat.S_ISREG(st.st_mode):
                os.unlink(path)
            else:
                continue
        except OSError:
            continue
        removed.append(path)
    return removed
