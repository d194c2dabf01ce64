"""Which folder is pifi's cache: the one pifi created (and marked), or one a person adopted with ``pifi cache adopt``.

A cache root is *pifi's* when it holds the marker pifi writes when it creates the folder (``.pifi-cache``,
next to a standard ``CACHEDIR.TAG`` so backup tools skip it). pifi marks a root only when it creates it or
finds it empty. Nothing else is adopted on its own, however pifi-shaped it looks (a Hugging Face hub cache
has the same ``models--org--name/refs/main`` layout): pifi neither writes into nor deletes from an unmarked
folder that holds files. :func:`adopt` (``pifi cache adopt``) marks a cache written by an older pifi, after
checking that everything in it is a pifi file by name and content (:mod:`.pifi_files`).

Even under a marked root, :mod:`.tidy` deletes only files that pifi's predicates accept.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pifi_extract.errors import CacheError

from .layout import HUB_PREFIX, INCOMING_DIR, LOCAL_PREFIX, LOCKS_DIR, MODEL_JSON, REFS_DIR, SAFE_COMMIT
from .pifi_files import (
    MEMO_RE,
    TEMP_RE,
    is_dir,
    is_file,
    is_pifi_artifact,
    is_pifi_model_record,
    is_pifi_side_file,
    lstat,
    names,
    ref_commit,
)

TAG_NAME = "CACHEDIR.TAG"
MARKER_NAME = ".pifi-cache"
TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
TAG_TEXT = (
    f"{TAG_SIGNATURE}\n# This file is a cache directory tag created by pifi (layer cache).\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
MARKER_TEXT = '{"pifi_cache": 1}\n'
ADOPT_HINT = "check --cache-dir / PIFI_CACHE; a cache written by an older pifi (before the marker): `pifi cache adopt`"


def is_marked(root: Path) -> bool:
    return is_file(root / MARKER_NAME)


def write_marker(root: Path) -> None:
    """Tag ``root`` as a pifi cache (best effort: a read-only shared cache stays as it is)."""
    for name, text in ((MARKER_NAME, MARKER_TEXT), (TAG_NAME, TAG_TEXT)):  # the marker first: a racing claim sees it
        path = root / name
        if lstat(path) is None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
            except OSError:
                pass


def claim(root: Path, *, created: bool = False) -> bool:
    """Mark ``root`` as pifi's if pifi just ``created`` it or it is an empty folder; True if it is pifi's."""
    if is_marked(root):
        return True
    if created or (root.is_dir() and set(names(root)) <= {TAG_NAME, MARKER_NAME}):
        write_marker(root)
        return True
    return False


def not_pifi_cache(root: Path) -> CacheError:
    return CacheError(
        f"{root} is not a pifi cache folder (no {MARKER_NAME} marker, and it is not empty); "
        "pifi neither writes nor deletes anything there",
        ADOPT_HINT,
    )


def require_owned(root: Path) -> None:
    """Raise :class:`CacheError` unless ``root`` is missing or pifi's (marked, or empty and now marked)."""
    if not root.exists() or claim(root):
        return
    raise not_pifi_cache(root)


def adoption_problems(root: Path) -> list[str]:
    """Why ``root`` is not a cache that pifi wrote (empty: every entry, two levels down, is pifi's by name and content)."""
    problems: list[str] = []
    for name in names(root):
        path = root / name
        if name in (TAG_NAME, MARKER_NAME) and is_file(path):
            continue
        if name in (LOCKS_DIR, INCOMING_DIR) and is_dir(path):
            bad = [n for n in names(path) if not (n.endswith(".lock") if name == LOCKS_DIR else TEMP_RE.match(n))]
            problems += [f"{path / n} is not a pifi lock or temp file" for n in bad[:1]]
        elif name.startswith((HUB_PREFIX, LOCAL_PREFIX)) and is_dir(path):
            problems += _source_problems(path)
        else:
            problems.append(f"{path} is not a pifi source folder")
    return problems


def _source_problems(source_dir: Path) -> list[str]:
    problems = []
    for sub in names(source_dir):
        path = source_dir / sub
        if sub == REFS_DIR and is_dir(path):
            for folder, _, files in os.walk(path, followlinks=False):
                problems += [f"{Path(folder) / n} is not a ref pifi wrote" for n in files
                             if ref_commit(Path(folder) / n) is None]
        elif SAFE_COMMIT.match(sub) and is_dir(path):
            problems += _commit_problems(path)
        else:
            problems.append(f"{path} is not a pifi commit folder")
    return problems


def _commit_problems(commit_dir: Path) -> list[str]:
    problems, found = [], False
    for n in names(commit_dir):
        path = commit_dir / n
        if is_pifi_artifact(path) or n == MODEL_JSON and is_pifi_model_record(path):
            found = True
        elif not (MEMO_RE.match(n) and is_pifi_side_file(path) or TEMP_RE.match(n) and is_file(path)):
            problems.append(f"{path} is not a file pifi wrote")
    return problems if found or problems else [f"{commit_dir} holds nothing pifi wrote"]


def adopt(root: Path) -> bool:
    """Mark ``root`` as a pifi cache after checking that pifi wrote everything in it; False if it already was.

    Raises :class:`CacheError` naming the first entry pifi did not write (nothing is marked then)."""
    if not root.is_dir():
        raise CacheError(f"{root} is not a folder", "pass the cache folder with --cache-dir")
    if is_marked(root):
        return False
    problems = adoption_problems(root)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CacheError(f"refusing to adopt {root}: {problems[0]}{more}",
                         "adopt only a cache folder an older pifi wrote; point PIFI_CACHE at a new folder otherwise")
    write_marker(root)
    if not is_marked(root):
        raise CacheError(f"cannot write the marker {root / MARKER_NAME}", "adopt it as a user who can write there")
    return True


def linked_part(root: Path, path: Path) -> Path | None:
    """The first component of ``path`` below ``root`` that is a symbolic link (or not there), else None."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path
    current = root
    for part in rel.parts:
        current = current / part
        st = lstat(current)
        if st is None or stat.S_ISLNK(st.st_mode):
            return current
    return None


def source_dirs(root: Path) -> list[Path]:
    """pifi's source folders of ``root`` (real folders, links not followed)."""
    return [root / n for n in names(root) if n.startswith((HUB_PREFIX, LOCAL_PREFIX)) and is_dir(root / n)]


def commit_dirs(source_dir: Path) -> list[Path]:
    return [source_dir / n for n in names(source_dir) if n != REFS_DIR and is_dir(source_dir / n)]
