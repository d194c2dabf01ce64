"""Integrity of cached artifacts: a cheap size+mtime memo on every use, the full sha256 on demand.

Beside each artifact sits a hidden memo ``.layer-31.safetensors.pifi-ok`` recording the size,
mtime and data sha256 that were last verified. Using an artifact re-reads only its header and
``stat``: if size and mtime still match the memo, the data is trusted; otherwise the data
sha256 is recomputed (and the memo refreshed). The memo's own mtime is the artifact's
"last used" time (for ``ls`` and ``prune``).

The memo also records the artifact's header digest (:func:`header_digest`), so a format-1 artifact
(whose header carries no digest) is used from the cache only where it predates format 2
(:func:`check_format`): its memo was written by a pifi before format 2 and still matches the file
(then its digest is recorded, and any later header edit is refused), or its memo records this very
header. A format-2 artifact downgraded in place (digest stripped, ``pifi.format`` set to 1, tensors
renamed) has a memo that records another digest, or none that matches: it is refused. Pulls refuse
format 1 outright (:func:`refuse_format_1`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pifi_extract.artifact import ArtifactInfo, data_sha256, header_sha256, read_artifact, verify_artifact
from pifi_extract.errors import ArtifactError
from pifi_extract.safetensors_header import PREFIX_BYTES, header_length, parse_header

from .fsutil import read_json, write_atomic
from .layout import memo_name


def memo_path(artifact: Path) -> Path:
    return artifact.with_name(memo_name(artifact.name))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def header_digest(info: ArtifactInfo) -> str:
    """The canonical header digest (:func:`~pifi_extract.artifact.header_sha256`): recorded and checked in a
    format-2 header, computed from the file for format 1."""
    if info.header_sha256:
        return info.header_sha256
    with open(info.path, "rb") as fh:
        prefix = fh.read(PREFIX_BYTES)
        raw = fh.read(header_length(prefix, info.size, str(info.path)))
    return header_sha256(parse_header(raw, info.size, str(info.path)))


def write_memo(info: ArtifactInfo) -> None:
    """Record that ``info.path`` (as it is now) has the data hash its header says, and its header digest (best effort)."""
    size, mtime_ns = _stamp(info.path)
    body = {"size": size, "mtime_ns": mtime_ns, "data_sha256": info.data_sha256, "header_sha256": header_digest(info)}
    try:
        write_atomic(memo_path(info.path), json.dumps(body).encode())
    except OSError:  # another user's read-only memo: the check just stays a full one
        pass


def memo_matches(info: ArtifactInfo, *, header: bool = True) -> bool:
    """The memo records this file's size, mtime and data hash (and, with ``header``, its header digest)."""
    memo = read_json(memo_path(info.path))
    if memo is None:
        return False
    size, mtime_ns = _stamp(info.path)
    same = memo.get("size") == size and memo.get("mtime_ns") == mtime_ns and memo.get("data_sha256") == info.data_sha256
    return same and (not header or memo.get("header_sha256") == header_digest(info))


def invalidate_memo(artifact: Path) -> None:
    """Forget that ``artifact`` was verified (after a failed check), so its next use re-hashes it and refuses it."""
    memo = memo_path(artifact)
    try:
        if memo.is_file() and not memo.is_symlink():
            memo.unlink()
    except OSError:
        pass


FORMAT_1_HINT = "extract it again with this pifi (`pifi cache rm KEY` first), or push it again from a re-extracted copy"


def check_format(info: ArtifactInfo, key: str | None = None) -> bool:
    """Refuse a cached format-1 artifact unless it predates format 2 (see the module docstring); True when
    its memo is one of an older pifi, matching the file: the caller records the header digest now."""
    if info.format_version >= 2:
        return False
    memo = read_json(memo_path(info.path))
    recorded = memo.get("header_sha256") if memo is not None else None
    if recorded is not None:
        if recorded != header_digest(info):
            raise corrupt_error(info.path, "its header was changed after it was stored: a format-1 header whose "
                                "digest differs from the one recorded", key)
        return False
    if memo is not None and memo_matches(info, header=False):
        return True  # stored by a pifi before format 2, untouched since
    target = key or str(info.path)
    raise ArtifactError(
        f"cached artifact {target} is a format-1 artifact (no header digest) that pifi cannot tell predates format 2 "
        "(its integrity memo is missing, or does not match the file); refused",
        FORMAT_1_HINT.replace("KEY", target),
    )


class FormatOneWarning(UserWarning):
    """A format-1 artifact outside the cache: its header (tensor names, config) is protected by no digest."""


def warn_format_1(info: ArtifactInfo) -> None:
    """Warn loudly about a format-1 file used from outside the cache (pifi cannot tell when it was written)."""
    if info.format_version < 2:
        import warnings

        warnings.warn(f"{info.path} is a format-1 artifact: no digest protects its tensor names and config, so an edit "
                      "of them goes unnoticed; extract it again with this pifi", FormatOneWarning, stacklevel=3)


def refuse_format_1(info: ArtifactInfo, where: str, action: str = "pulled") -> None:
    """What is pulled or pushed must carry a header digest (format >= 2): refuse format 1 in one line."""
    if info.format_version < 2:
        raise ArtifactError(
            f"{where} is a format-1 artifact (no header digest: its tensor names and config are unprotected); "
            f"refused, nothing was {action}",
            FORMAT_1_HINT.replace("KEY", where),
        )


def uploadable(path: Path, where: str) -> ArtifactInfo:
    """An artifact about to be uploaded: its data hash recomputed, and format 1 refused (it could not be pulled)."""
    info = verify_artifact(path)
    refuse_format_1(info, where, "pushed")
    return info


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
    check_format(info, key)
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
    if check_format(info, key):
        write_memo(info)  # a format-1 artifact of an older pifi: its header digest is recorded from now on
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
