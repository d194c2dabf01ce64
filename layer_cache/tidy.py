"""What pifi may delete: only files it wrote (name AND content, :mod:`.pifi_files`), under its own root, never through a link.

Removal is planned first (:func:`plan_tidy`), from ``lstat`` and small reads only, so ``--dry-run`` shows
exactly what a real run removes; :func:`apply` then unlinks files and ``rmdir``s folders that this plan
emptied. No tree is ever removed whole, no symbolic link is followed, and a folder pifi did not empty
(a user's empty folder, a Hugging Face cache's ``blobs/``) stays.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Iterable

from pifi_extract.errors import CacheError

from .layout import ARTIFACT_RE, HUB_PREFIX, INCOMING_DIR, LOCAL_PREFIX, MEMO_SUFFIX, MODEL_JSON, ORIGIN_SUFFIX, REFS_DIR
from .ownership import linked_part, require_owned
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
    stale_temp_files,
)


class _Plan:
    """Paths to remove: files in order, then folders (deepest first, as they were emptied)."""

    def __init__(self) -> None:
        self.gone: set[Path] = set()
        self.files: list[Path] = []
        self.dirs: list[Path] = []

    def drop(self, path: Path, *, folder: bool = False) -> None:
        if path not in self.gone:
            self.gone.add(path)
            (self.dirs if folder else self.files).append(path)

    def left(self, folder: Path) -> list[str]:
        return [n for n in names(folder) if folder / n not in self.gone]

    def emptied(self, folder: Path) -> bool:
        """This plan removes something in ``folder`` and leaves it empty."""
        here = names(folder)
        return bool(here) and all(folder / n in self.gone for n in here)


def plan_tidy(root: Path, artifacts: Iterable[Path] = (), *, now: float | None = None) -> list[Path]:
    """Every path a removal of ``artifacts`` plus a sweep removes, files first, then folders (deepest first).

    Planned: the artifacts and their memos, stale temp files, the ``model.json`` of a commit folder left
    without artifacts, refs naming a commit folder removed here, and folders this plan empties. Raises
    :class:`CacheError` for a root that is not pifi's, or an artifact pifi did not write or reached through a link.
    """
    now = time.time() if now is None else now
    require_owned(root)
    plan = _Plan()
    for art in artifacts:
        link = linked_part(root, art)
        if link is not None or not is_pifi_artifact(art):
            why = f"is reached through a symbolic link ({link})" if link is not None else "is not a pifi artifact"
            raise CacheError(f"{art} {why}; pifi does not delete it", "remove it at its real place yourself")
        plan.drop(art)
        for suffix in (MEMO_SUFFIX, ORIGIN_SUFFIX):
            side = art.with_name(f".{art.name}{suffix}")
            if is_pifi_side_file(side):
                plan.drop(side)
    for tmp in stale_temp_files(root / INCOMING_DIR, now=now) if is_dir(root / INCOMING_DIR) else []:
        plan.drop(tmp)
    for name in names(root):
        if name.startswith((HUB_PREFIX, LOCAL_PREFIX)) and is_dir(root / name):
            _plan_source(root / name, now, plan)
    return plan.files + plan.dirs


def _plan_source(source_dir: Path, now: float, plan: _Plan) -> None:
    removed_commits: set[str] = set()
    for sub in names(source_dir):
        commit_dir = source_dir / sub
        if sub == REFS_DIR or not is_dir(commit_dir):
            continue
        for tmp in stale_temp_files(commit_dir, now=now):
            plan.drop(tmp)
        for n in plan.left(commit_dir):
            m = MEMO_RE.match(n)
            orphan = m is not None and (commit_dir / m["artifact"] in plan.gone or not is_file(commit_dir / m["artifact"]))
            if orphan and is_pifi_side_file(commit_dir / n):
                plan.drop(commit_dir / n)
        left = plan.left(commit_dir)
        if any(ARTIFACT_RE.match(n) or TEMP_RE.match(n) for n in left):
            continue  # artifacts (or a writer's temp file) stay: so do the record and the refs
        if MODEL_JSON in left and is_pifi_model_record(commit_dir / MODEL_JSON):
            plan.drop(commit_dir / MODEL_JSON)
        if plan.emptied(commit_dir):
            plan.drop(commit_dir, folder=True)
            removed_commits.add(sub)
    refs = source_dir / REFS_DIR
    if is_dir(refs):
        for folder, _, files in os.walk(refs, topdown=False, followlinks=False):
            here = Path(folder)
            for n in files:
                if ref_commit(here / n) in removed_commits:  # a ref pifi wrote, to a commit removed here
                    plan.drop(here / n)
            if plan.emptied(here):
                plan.drop(here, folder=True)
    if plan.emptied(source_dir):
        plan.drop(source_dir, folder=True)


def apply(paths: Iterable[Path]) -> list[Path]:
    """Remove planned paths: unlink regular files, ``rmdir`` folders (kept if not empty); links are never touched."""
    removed = []
    for path in paths:
        st = lstat(path)
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
