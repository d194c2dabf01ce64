"""layer_cache: a shared, concurrency-safe cache of pifi layer artifacts, shared across a lab via the Hub.

    from layer_cache import get_or_extract, artifact_path
    art = get_or_extract("meta-llama/Llama-3.1-8B", -1, dtype="bf16")   # extracted once, then cached
    path = artifact_path("meta-llama/Llama-3.1-8B:-1")                  # any reference -> a checked file

Root: ``cache_dir`` argument (``--cache-dir``) > ``$PIFI_CACHE`` > ``$XDG_CACHE_HOME/pifi`` or ``~/.cache/pifi``.
"""

from __future__ import annotations

from .get_or_extract import get_or_extract, get_or_extract_layers
from .fsutil import place_copy
from .hub_share import PushResult, push
from .layout import CacheKey, cache_root, default_cache_root, key_of
from .pull import pull
from .prune import PruneResult, VerifyResult, adopt, parse_duration, parse_size, prune, verify
from .resolver import ResolvedArtifact, artifact_path, resolve_key, resolve_reference
from .store import CachedArtifact, LayerCache, local_fingerprint

__all__ = [
    "CacheKey",
    "CachedArtifact",
    "LayerCache",
    "PruneResult",
    "PushResult",
    "ResolvedArtifact",
    "VerifyResult",
    "adopt",
    "artifact_path",
    "cache_root",
    "default_cache_root",
    "get_or_extract",
    "get_or_extract_layers",
    "key_of",
    "local_fingerprint",
    "parse_duration",
    "place_copy",
    "parse_size",
    "prune",
    "pull",
    "push",
    "resolve_key",
    "resolve_reference",
    "verify",
]
