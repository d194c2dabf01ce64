"""pifi's version, read from the installed package metadata when first asked (importlib.metadata costs ~15 ms,
which a command's start-up should not pay)."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def pifi_version() -> str:
    """The installed pifi's version ("0.0.0+unknown" when running from a source tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pifi")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+unknown"
