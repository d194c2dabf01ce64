"""``pifi cache verify --against-source``: does a cached artifact hold what its key's source holds?

A pulled artifact may claim any (source, commit) key. This re-extracts the key's layer from the
key's own source (the Hub repo at that commit, or the local folder) into a temporary file and
compares the tensor index and the tensor bytes (the data sha256 of both files).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pifi_extract.errors import PifiError
from pifi_extract.extract import open_source, plan_layers, write_artifact

from . import integrity
from .layout import CacheKey, hub_repo_of
from .prune import VerifyResult
from .store import LayerCache, local_fingerprint


def _source_args(key: CacheKey) -> tuple[str, str | None, str | None]:
    """(llm, revision, gguf_file) that name the key's source at its commit."""
    if key.kind == "hub":
        repo = hub_repo_of(key.source)
        gguf_file = key.source[len(repo) + 1 :] or None
        return repo, key.commit, gguf_file
    return key.source, None, None


def verify_against_source(
    key: CacheKey, *, cache_dir: str | os.PathLike[str] | None = None, token: str | bool | None = None
) -> VerifyResult:
    """Re-read the layer from its source and compare; a mismatch is reported, not raised.

    Only a failed hash or a real difference is a corruption; a source that cannot be read (a local folder gone
    or changed since, offline, no access, the Hub down) leaves the artifact *unchecked* (``unchecked=True``)."""
    cache = LayerCache(cache_dir)
    path = cache.path_of(key)
    try:
        cached = integrity.verify_full(path, key.display())
    except PifiError as err:
        return VerifyResult(key, False, err.message)
    llm, revision, gguf_file = _source_args(key)
    if key.kind == "local" and not Path(llm).exists():
        return _unchecked(key, f"the local source {llm} is gone")
    if key.kind == "local" and local_fingerprint(llm) != key.commit:
        return _unchecked(key, f"the local source {llm} changed since this artifact was made")
    try:
        source = open_source(llm, revision, token=token, gguf_file=gguf_file)
        (plan,) = plan_layers(source, [key.layer_index], dtype=key.dtype)
        with tempfile.TemporaryDirectory(prefix="pifi-verify-") as tmp:
            fresh = write_artifact(source, plan, Path(tmp) / key.filename)
    except PifiError as err:
        return _unchecked(key, err.message)
    if fresh.tensors == cached.tensors and fresh.data_sha256 == cached.data_sha256:
        return VerifyResult(key, True)
    return VerifyResult(key, False, f"differs from layer {key.layer_index} of its source {key.source}@{key.commit[:12]}")


def _unchecked(key: CacheKey, why: str) -> VerifyResult:
    return VerifyResult(key, True, f"cannot check against the source ({why}); intact by its own hashes", unchecked=True)
