"""The one resolver of artifact references, used everywhere an artifact is accepted.

A reference is one of:

* a file path: ``runs/layer.safetensors`` (any pifi artifact, in the cache or not);
* a cache key: ``SOURCE[@REV]:LAYER[:DTYPE]``, e.g. ``meta-llama/Llama-3.1-8B:-1``,
  ``meta-llama/Llama-3.1-8B@main:31``, ``meta-llama/Llama-3.1-8B@0e9e39f249a1:31:bf16``
  (``REV`` is a ref the cache recorded or a commit prefix; ``LAYER`` may be negative);
* a path inside the cache: ``models--org--name/<commit>/layer-31.safetensors``;
* a Hub file: ``hf://ORG/REPO[@REV]/path/layer-31.safetensors``, pulled into the cache on first use.

Without ``@REV``, a key means the commit ``main`` points to when the cache has that ref (for a local
folder: its current contents), else the only commit that has the layer. Anything that matches
nothing, or several artifacts, is a :class:`CacheError` that names what exists.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pifi_extract.artifact import ArtifactInfo, read_artifact
from pifi_extract.errors import CacheError, PifiError
from pifi_extract.extract import is_local_reference

from .integrity import warn_format_1
from .layout import DTYPE_TAGS, REFS_DIR, CacheKey, parse_rel_path
from .pull import pull
from .store import CachedArtifact, LayerCache, local_fingerprint

KEY_RE = re.compile(
    r"^(?P<source>.+?)(?:@(?P<rev>[^:@]+))?:(?P<layer>-?\d+)(?::(?P<dtype>" + "|".join(DTYPE_TAGS) + r"))?$"
)
HF_RE = re.compile(r"^hf://(?P<repo>[^/@]+/[^/@]+)(?:@(?P<rev>[^/]+))?/(?P<path>.+)$")
LISTED = 8


@dataclass(frozen=True)
class ResolvedArtifact:
    """Where a reference points: always a file; ``cached`` when it is a cache entry.

    ``info`` is the header parsed while resolving; ``verified`` says whether its data hash was checked
    (a cache entry: by the integrity memo or in full), so callers never re-read or re-hash the file.
    """

    path: Path
    cached: CachedArtifact | None = None
    info: ArtifactInfo | None = None
    verified: bool = False

    def __fspath__(self) -> str:  # so `Path(resolve_reference(ref))` is the artifact file
        return str(self.path)


def resolve_reference(
    reference: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
) -> ResolvedArtifact:
    """Resolve ``reference`` (see the module docstring); cache entries come back integrity-checked."""
    cache = LayerCache(cache_dir)
    path, key = _locate(cache, reference, token)
    if key is None:
        info = read_artifact(path)  # refuses a file that is not a pifi artifact
        warn_format_1(info)
        return ResolvedArtifact(path, info=info)
    cached, info = cache.get_checked(key)
    return ResolvedArtifact(cached.path, cached, info, verified=True)


def resolve_key(
    reference: str, *, cache_dir: str | os.PathLike[str] | None = None, token: str | bool | None = None
) -> CacheKey:
    """The cache key a reference names, without reading the artifact (``rm`` and ``verify`` use it)."""
    cache = LayerCache(cache_dir)
    path, key = _locate(cache, reference, token)
    if key is None:
        raise CacheError(f"{reference} is a file outside the pifi cache ({cache.root})", "pass a key from `pifi cache ls`")
    return key


def artifact_path(reference: str, *, cache_dir: str | os.PathLike[str] | None = None, token=None) -> Path:
    """The file a reference points to (what ``pifi train --layer-artifact`` and ``pifi inspect`` use)."""
    return resolve_reference(reference, cache_dir=cache_dir, token=token).path


# ---- helpers ---------------------------------------------------------------------------------------
def _locate(cache: LayerCache, reference: str, token: str | bool | None) -> tuple[Path, CacheKey | None]:
    """(file, its cache key or None) for any reference form; CacheError when nothing matches."""
    ref = reference.strip()
    hf = HF_RE.match(ref)
    if hf:
        return _via_hf(cache, hf["repo"], hf["rev"], hf["path"], token)
    path = Path(ref).expanduser()
    if path.is_file():
        return path, _key_at(cache, path.resolve())
    if parse_rel_path(ref) is not None and (cache.root / ref).is_file():
        key = _key_at(cache, (cache.root / ref).resolve())
        if key is not None:
            return cache.path_of(key), key
    m = KEY_RE.match(ref)
    if m is None:
        raise _unknown(cache, reference, "it is not a file, a cache key (SOURCE[@REV]:LAYER) or an hf:// path")
    key = _match_key(cache, m["source"], m["rev"], int(m["layer"]), m["dtype"], reference)
    return cache.path_of(key), key


def _key_at(cache: LayerCache, path: Path) -> CacheKey | None:
    try:
        rel = PurePosixPath(path.relative_to(cache.root.resolve()).as_posix())
    except ValueError:
        return None
    return next((k for k in cache.keys() if k.rel_path == rel), None)


def _via_hf(
    cache: LayerCache, repo: str, rev: str | None, path: str, token: str | bool | None
) -> tuple[Path, CacheKey]:
    """A pushed artifact: used from the cache if its layout path is there, else pulled (verified) first."""
    if parse_rel_path(path) is not None:
        local = cache.root / PurePosixPath(*PurePosixPath(path).parts[-3:])
        key = _key_at(cache, local.resolve()) if local.is_file() else None
        if key is not None:
            return local, key
    (cached,) = pull(repo, [path], revision=rev, token=token, cache_dir=cache.root)
    return cached.path, cached.key


def _source_dirs(cache: LayerCache, source: str) -> list[tuple[str, str, Path]]:
    """(source id, kind, folder) for what ``source`` may name: a Hub repo id and/or a local path."""
    out = []
    if is_local_reference(source) or Path(source).expanduser().exists():
        local = str(Path(source).expanduser().resolve())
        out.append((local, "local", cache.source_dir(local, "local")))
    if not source.startswith((".", "/", "~")):
        out.append((source, "hub", cache.source_dir(source, "hub")))
    return [t for t in out if t[2].is_dir()]


def _commits(cache: LayerCache, source: str, kind: str, folder: Path, rev: str | None) -> tuple[list[str], str | None]:
    """Commits of ``folder`` that ``rev`` may name, and the preferred one when no ``rev`` is given."""
    commits = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != REFS_DIR)
    refs = cache.refs(folder)
    if rev is not None:
        if rev in refs:
            return ([refs[rev]] if refs[rev] in commits else []), None
        return [c for c in commits if len(rev) >= 4 and c.startswith(rev)], None
    if kind == "hub":
        preferred = refs.get("main")
    else:
        preferred = local_fingerprint(source) if Path(source).exists() else None
    return commits, (preferred if preferred in commits else None)


def _match_key(
    cache: LayerCache, source: str, rev: str | None, layer: int, dtype: str | None, reference: str
) -> CacheKey:
    candidates: list[CacheKey] = []
    for source_id, kind, folder in _source_dirs(cache, source):
        commits, preferred = _commits(cache, source_id, kind, folder, rev)
        if preferred is not None:
            keys = _keys_of_commit(cache, source_id, kind, preferred, layer, dtype)
            if keys:  # `main` (or the folder's current state) wins over older commits
                candidates += keys
                continue
        for commit in commits:
            candidates += _keys_of_commit(cache, source_id, kind, commit, layer, dtype)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise _unknown(cache, reference, "no cached artifact matches it")
    names = ", ".join(k.display() for k in candidates[:LISTED])
    raise CacheError(
        f"{reference} is ambiguous: it matches {len(candidates)} cached artifacts ({names})",
        "add @COMMIT and/or :DTYPE to pick one (`pifi cache ls` shows each one's reference)",
    )


def _keys_of_commit(
    cache: LayerCache, source: str, kind: str, commit: str, layer: int, dtype: str | None = None
) -> list[CacheKey]:
    """The cached artifacts of one commit's layer: every dtype, or the one ``dtype`` names. As in ``pifi extract``,
    the dtype the checkpoint already has names the ``keep`` artifact (``:fp32`` of an fp32 model = ``:keep``)."""
    if dtype is not None:
        try:
            key = cache.find(source, kind, commit, layer, dtype)
        except PifiError:  # layer out of range for this commit
            return []
        return [key] if key is not None else []
    out = []
    for dtype in DTYPE_TAGS:
        try:
            key = cache.find(source, kind, commit, layer, dtype)
        except PifiError:  # layer out of range for this commit
            return []
        if key is not None and key not in out and key.dtype == dtype:
            out.append(key)
    return out


def _unknown(cache: LayerCache, reference: str, why: str) -> CacheError:
    existing = [k.display() for k in cache.keys()]
    listed = ", ".join(existing[:LISTED]) + (f" and {len(existing) - LISTED} more" if len(existing) > LISTED else "")
    what = f"the cache ({cache.root}) holds: {listed}" if existing else f"the cache ({cache.root}) is empty"
    return CacheError(f"unknown artifact reference {reference!r}: {why}; {what}", "see `pifi cache ls`")
