"""Integrity of cached artifacts: a cheap size+mtime memo on every use, the full sha256 on demand.

Beside each artifact sits a hidden memo ``.layer-31.safetensors.pifi-ok`` recording the size,
mtime and data sha256 that were last verified. Using an artifact re-reads only its header and
``stat``: if size and mtime still match the memo, the data is trusted; otherwise the data
sha256 is recomputed (and the memo refreshed). The memo's own mtime is the artifact's
"last used" time (for ``ls`` and ``prune``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pifi_extract.artifact import ArtifactInfo, data_sha256, read_artifact
from pifi_extract.errors import ArtifactError

from .fsutil import read_json, write_atomic
from .layout import memo_name


def memo_path(artifact: Path) -> Path:
    return artifact.with_name(memo_name(artifact.name))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def write_memo(info: ArtifactInfo) -> None:
    """Record that ``info.path`` (as it is now) has the data hash its header says (best effort)."""
    size, mtime_ns = _stamp(info.path)
    body = {"size": size, "mtime_ns": mtime_ns, "data_sha256": info.data_sha256}
    try:
        write_atomic(memo_path(info.path), json.dumps(body).encode())
    except OSError:  # another user's read-only memo: the check just stays a full one
        pass


def memo_matches(info: ArtifactInfo) -> bool:
    memo = read_json(memo_path(info.path))
    if memo is None:
        return False
    size, mtime_ns = _stamp(info.path)
    return memo.get("size") == size and memo.get("mtime_ns") == mtime_ns and memo.get("data_sha256") == info.data_sha256


def invalidate_memo(artifact: Path) -> None:
    """Forget that ``artifact`` was verified (after a failed check), so its next use re-hashes it and refuses it."""
    memo = memo_path(artifact)
    try:
        if memo.is_file() and not memo.is_symlink():
            memo.unlink()
    except OSError:
        pass


def corrupt_error(path: Path, detail: str, key: str | None) -> ArtifactError:
    target = key or str(path)
    return ArtifactError(
        f"cached artifact {target} is corrupt ({detail})",
        f"remove it with `pifi cache rm {target}` and extract (or pull) it again",
    )


def verify_full(path: Path, key: str | None = None) -> ArtifactInfo:
    """Recompute the data sha256; refresh the memo on success, raise :class:`ArtifactError` otherwise."""
    try:
        info = read_artifact(path)
    except ArtifactError as err:
        raise corrupt_error(path, err.message, key) from None
    actual = data_sha256(info.path, info.data_start)
    if actual != info.data_sha256:
        invalidate_memo(path)
        raise corrupt_error(path, f"data sha256 {actual[:12]}… != recorded {info.data_sha256[:12]}…", key)
    write_memo(info)
    return info


def checked(path: Path, key: str | None = None) -> ArtifactInfo:
    """The artifact's header, its data trusted by the memo or verified in full; marks it as used now."""
    try:
        info = read_artifact(path)
    except ArtifactError as err:
        raise corrupt_error(path, err.message, key) from None
    if not memo_matches(info):
        info = verify_full(path, key)
    touch_used(path)
    return info


def touch_used(artifact: Path) -> None:
    try:
        os.utime(memo_path(artifact))
    except OSError:
        pass


def last_used(artifact: Path) -> float:
    """When the artifact was last used (memo mtime), else when it was written."""
    for p in (memo_path(artifact), artifact):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0
