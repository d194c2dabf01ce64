"""Maintenance of the cache: ``prune`` (unused for a while / least recently used beyond a size) and ``verify``.

Parsing and choosing are pure (:func:`parse_duration`, :func:`parse_size`, :func:`choose`);
:func:`prune` applies the choice and sweeps what crashed writers left behind; :func:`verify`
recomputes data hashes.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Sequence

from pifi_extract.errors import ConfigError, PifiError

from . import integrity, ownership
from .integrity import verify_full
from .layout import CacheKey
from .pifi_files import TEMP_RE
from .tidy import plan_tidy
from .store import CachedArtifact, LayerCache

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``2w``, ``45s``."""
    m = re.fullmatch(r"\s*(\d{1,12}(?:\.\d{1,12})?)\s*([smhdw])\s*", text.lower())
    if m is None:
        raise ConfigError(f"cannot read the duration {text!r}", "write it like 30d, 12h, 90m, 2w or 45s")
    return float(m[1]) * _DURATION_UNITS[m[2]]


def parse_size(text: str) -> int:
    """Bytes in ``20GB``, ``500MB``, ``1.5GiB``, ``1024`` (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    m = re.fullmatch(r"\s*(\d{1,20}(?:\.\d{1,20})?)\s*([a-z]*)\s*", text.lower())
    if m is None or m[2] not in _SIZE_UNITS:
        raise ConfigError(f"cannot read the size {text!r}", "write it like 20GB, 500MB, 1.5GiB or a number of bytes")
    return int(Decimal(m[1]) * _SIZE_UNITS[m[2]])


def choose(
    entries: Sequence[CachedArtifact],
    *,
    now: float,
    older_than_s: float | None,
    max_bytes: int | None,
    other_bytes: int = 0,
) -> list[CachedArtifact]:
    """Which artifacts to remove: unused for ``older_than_s``, then least recently used until ``max_bytes`` fit.

    ``other_bytes`` (temp files of writers, which stay) count against ``max_bytes`` too.
    """
    chosen = [e for e in entries if older_than_s is not None and now - e.last_used > older_than_s]
    if max_bytes is not None:
        left = sorted((e for e in entries if e not in chosen), key=lambda e: e.last_used)
        total = sum(e.size for e in left) + other_bytes
        for e in left:
            if total <= max_bytes:
                break
            chosen.append(e)
            total -= e.size
    return chosen


@dataclass(frozen=True)
class PruneResult:
    removed: list[CachedArtifact]
    freed_bytes: int
    kept_bytes: int
    temp_files_removed: int
    paths: list[Path]  # every file and folder removed (or, with dry_run, that a real run removes)
    skipped: list[CachedArtifact]  # chosen but reached through a symbolic link: never deleted


def prune(
    *,
    older_than: str | None = None,
    max_size: str | None = None,
    dry_run: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PruneResult:
    """Remove what :func:`choose` picks (nothing chosen when neither limit is given) and stale temp files."""
    older_than_s = parse_duration(older_than) if older_than else None
    max_bytes = parse_size(max_size) if max_size else None
    cache = LayerCache(cache_dir)
    if not cache.root.exists():
        return PruneResult([], 0, 0, 0, [], [])
    ownership.require_owned(cache.root)  # before anything is listed or chosen
    entries = cache.entries()
    now = time.time()
    stale = set(plan_tidy(cache.root, now=now))  # stale temp files go anyway: only live ones count
    live_temp = sum(size for p, size in cache.temp_files() if p not in stale)
    chosen = choose(entries, now=now, older_than_s=older_than_s, max_bytes=max_bytes, other_bytes=live_temp)
    skipped = [e for e in chosen if ownership.linked_part(cache.root, e.path) is not None]
    chosen = [e for e in chosen if e not in skipped]
    plan = cache.plan_tidy([e.path for e in chosen])
    if dry_run:
        paths = plan
    else:
        paths = []
        for entry in chosen:
            paths += cache.remove(entry.key)
        paths += cache.tidy()
    swept = sum(1 for p in paths if TEMP_RE.match(p.name))
    freed = sum(e.size for e in chosen)
    return PruneResult(chosen, freed, sum(e.size for e in entries) - freed, swept, paths, skipped)


def adopt(*, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Mark a cache folder an older pifi wrote (before the ``.pifi-cache`` marker) as pifi's, once every entry
    in it is checked to be pifi's by name and content (:func:`.ownership.adopt`); False if it already was."""
    return ownership.adopt(LayerCache(cache_dir).root)


@dataclass(frozen=True)
class VerifyResult:
    key: CacheKey
    ok: bool
    error: str | None = None
    unchecked: bool = False  # --against-source: the source could not be read (gone, offline): ok means only
    # that its own hashes hold


def verify(keys: Sequence[CacheKey] | None = None, *, cache_dir: str | os.PathLike[str] | None = None) -> list[VerifyResult]:
    """Recompute the data sha256 of every (or each given) artifact; corrupt ones are reported, not raised."""
    cache = LayerCache(cache_dir)
    results = []
    for key in cache.keys() if keys is None else keys:
        try:
            verify_full(cache.path_of(key), key.display())
            results.append(VerifyResult(key, True))
        except PifiError as err:
            results.append(VerifyResult(key, False, err.message))
            integrity.invalidate_memo(cache.path_of(key))  # refused on its next use, not trusted by size+mtime
    return results
