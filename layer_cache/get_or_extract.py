"""The one way pifi obtains a layer: from the cache if it is there, else extracted into it.

Cost of a second request for the same key:

* ``revision`` is a full commit sha, or ``HF_HUB_OFFLINE=1`` and the cache knows what the
  revision (default ``main``) resolved to: no request at all.
* ``revision`` is a branch or tag (or none): one metadata request to resolve the commit.
* a local folder: a ``stat`` of its files (its fingerprint).

A GGUF file (``gguf_file``) of a Hub repo is the source ``ORG/REPO/FILE.gguf``; of a local folder,
the file's own path (the same key as passing the ``.gguf`` path itself).

Two processes asking for the same missing key extract it once: the second waits on the
key's lock, then finds the artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from huggingface_hub import constants

from pifi_extract.artifact import METADATA_KEYS
from pifi_extract.extract import is_local_reference, open_source, plan_layers, write_artifact
from pifi_extract.plan import LayerPlan

from .layout import FULL_SHA_RE, CacheKey, cache_root, dtype_tag
from .store import CachedArtifact, LayerCache, local_fingerprint

ProgressCallback = Callable[[int, int], None]


def get_or_extract(
    llm: str,
    layer: int,
    *,
    revision: str | None = None,
    dtype: str = "keep",
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    on_wait: Callable[[], None] | None = None,
    gguf_file: str | None = None,
) -> CachedArtifact:
    """The cached artifact of one layer of ``llm`` (Hub repo id, local folder or .gguf file), extracting it if needed.

    ``gguf_file``: read that ``.gguf`` file of the repo or folder ``llm``.
    """
    (artifact,) = get_or_extract_layers(
        llm,
        [layer],
        revision=revision,
        dtype=dtype,
        token=token,
        cache_dir=cache_dir,
        progress=progress,
        on_wait=on_wait,
        gguf_file=gguf_file,
    )
    return artifact


def get_or_extract_layers(
    llm: str,
    layers: Sequence[int],
    *,
    revision: str | None = None,
    dtype: str = "keep",
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    on_wait: Callable[[], None] | None = None,
    gguf_file: str | None = None,
) -> list[CachedArtifact]:
    """Like :func:`get_or_extract` for several layers of one model (one source, one commit resolution).

    ``progress(advance_bytes, total_bytes)`` reports tensor bytes of each extraction; ``on_wait()`` is
    called when another process holds a key's lock (it is extracting the same layer).
    """
    cache = LayerCache(cache_dir)
    dtype_tag(dtype)  # validate the choice early
    source_id, kind = source_key(llm, gguf_file)
    if kind == "local":
        commit: str | None = local_fingerprint(source_id) if Path(source_id).exists() else None
    else:
        commit = _known_commit(cache, source_id, revision)
    found = _lookup(cache, source_id, kind, commit, layers, dtype) if commit else {}
    if len(found) == len(set(layers)):
        return [found[layer] for layer in layers]

    source = open_source(llm, revision, token=token, gguf_file=gguf_file)
    if kind == "hub":
        commit = source.commit
    assert commit is not None
    found.update(_lookup(cache, source_id, kind, commit, [x for x in layers if x not in found], dtype))
    missing = [x for x in dict.fromkeys(layers) if x not in found]
    if missing:
        cache.check_writable()
        for requested, plan in zip(missing, plan_layers(source, missing, dtype=dtype)):
            key = CacheKey(source_id, kind, commit, plan.layer_index, _tag_of_plan(plan, dtype))
            found[requested] = _insert(cache, key, source, plan, revision, progress, on_wait)
    if kind == "hub" and getattr(source, "host", source.kind) == "hub":  # only once the layers are there
        cache.write_ref(source_id, kind, revision or "main", commit)  # so `main` resolves offline later
    return [found[layer] for layer in layers]


def source_key(llm: str, gguf_file: str | None = None) -> tuple[str, str]:
    """(source id, kind) under which the cache files the layers of ``llm``."""
    if is_local_reference(llm):
        return str((Path(llm).expanduser() / (gguf_file or "")).resolve()), "local"
    return (f"{llm}/{gguf_file}" if gguf_file else llm), "hub"


def protected_places(llm: str, *, gguf_file: str | None = None, cache_dir: str | Path | None = None
                     ) -> list[tuple[str, Path]]:
    """Where a copy of ``llm``'s layers (``-o``) must never be written: the pifi cache, a local source (its folder
    or file), and for a Hub source the Hugging Face cache (read offline, the source is a snapshot there)."""
    places = [("the pifi cache", cache_root(cache_dir))]
    if is_local_reference(llm):
        places.append(("the source model", Path(llm).expanduser()))
    else:
        places.append(("the Hugging Face cache", Path(constants.HF_HUB_CACHE)))
    return places


class OpenSourceCache:
    """The cache entries of one already opened source: look a planned layer up, or extract it into the cache."""

    def __init__(self, llm: str, source: object, *, gguf_file: str | None = None, revision: str | None = None,
                 dtype: str = "keep", cache_dir: str | Path | None = None) -> None:
        self.cache = LayerCache(cache_dir)
        self.source, self.revision, self.dtype = source, revision, dtype
        self.source_id, self.kind = source_key(llm, gguf_file)
        commit = local_fingerprint(self.source_id) if self.kind == "local" else getattr(source, "commit", None)
        self.commit: str | None = commit

    def find(self, layer: int) -> CachedArtifact | None:
        """The cached artifact of layer ``layer`` (resolved index), or None."""
        if self.commit is None:
            return None
        return _lookup(self.cache, self.source_id, self.kind, self.commit, [layer], self.dtype).get(layer)

    def insert(self, plan: LayerPlan, progress: ProgressCallback | None = None) -> CachedArtifact:
        """Extract ``plan`` into the cache (once, under the key's lock)."""
        assert self.commit is not None
        self.cache.check_writable()
        if self.kind == "hub" and getattr(self.source, "host", getattr(self.source, "kind", "")) == "hub":
            self.cache.write_ref(self.source_id, self.kind, self.revision or "main", self.commit)
        key = CacheKey(self.source_id, self.kind, self.commit, plan.layer_index, _tag_of_plan(plan, self.dtype))
        return _insert(self.cache, key, self.source, plan, self.revision, progress, None)


def _known_commit(cache: LayerCache, repo_id: str, revision: str | None) -> str | None:
    """The commit a Hub revision names, when it can be known without a request."""
    if revision and FULL_SHA_RE.match(revision):
        return revision
    if constants.is_offline_mode():
        return cache.read_ref(repo_id, "hub", revision or "main")
    return None


def _lookup(
    cache: LayerCache, source: str, kind: str, commit: str, layers: Sequence[int], dtype: str
) -> dict[int, CachedArtifact]:
    found = {}
    for layer in layers:
        key = cache.find(source, kind, commit, layer, dtype)
        if key is not None:
            found[layer] = cache.get(key)
    return found


def _tag_of_plan(plan: LayerPlan, dtype: str) -> str:
    provenance = json.loads(plan.metadata[METADATA_KEYS["provenance"]])
    return dtype_tag(dtype, provenance.get("source_dtype"))


def _insert(
    cache: LayerCache,
    key: CacheKey,
    source: object,
    plan: LayerPlan,
    revision: str | None,
    progress: ProgressCallback | None,
    on_wait: Callable[[], None] | None,
) -> CachedArtifact:
    """Extract ``plan`` into the cache under ``key``'s lock, unless another process just did."""
    with cache.locked(key, on_wait) as path:
        if path.is_file():
            return cache.get(key)
        info = write_artifact(source, plan, path, progress=progress)  # type: ignore[arg-type]
        cache.record(key, info, revision)
    return cache.get(key, hit=False)
