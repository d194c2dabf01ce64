"""``pull``: artifacts of a Hub repo into the cache, each refused before its data is read unless it is a pifi artifact.

``pull`` reads each file's header first (two range requests) and refuses anything that is not a
pifi artifact before downloading its data; the data sha256 is checked before the file enters
the cache, and where it came from (``pulled from ORG/REPO``) is recorded beside it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

from pifi_extract.artifact import ArtifactInfo, data_sha256, read_artifact
from pifi_extract.errors import ArtifactError, CacheError, NetworkError, OfflineError, PifiError, SourceNotFoundError
from pifi_extract.safetensors_header import PREFIX_BYTES, header_length
from pifi_extract.writer import temp_name_for

from .fsutil import ensure_dir, file_mode, storage_error, sweep_temp_files
from .integrity import refuse_format_1
from .layout import INCOMING_DIR, CacheKey, key_of
from .store import CachedArtifact, LayerCache

CHUNK = 8 << 20
PEEK_BYTES = 4096
MAX_HEADER_BYTES = 16 << 20  # a pifi artifact's header is a few KB (the source's config.json included)


def _pwrite_all(fd: int, data: bytes, offset: int, where: Path) -> None:
    """Write all of ``data`` at ``offset`` (a short write is retried; no progress means the disk is full)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise storage_error(OSError(28, "No space left on device"), where)
        view, offset = view[n:], offset + n


def pull(
    repo_id: str,
    paths: Sequence[str] | None = None,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[CachedArtifact]:
    """Download artifacts of a Hub repo (all ``*.safetensors``, or ``paths``) into the cache, verified.

    All files are staged and checked first; if any is refused, none enters the cache.
    """
    from pifi_extract.hub_source import HubSource

    cache = LayerCache(cache_dir)
    source = HubSource(repo_id, revision, token=token)
    available = set(source.files())
    wanted = list(dict.fromkeys(p.strip("/") for p in paths)) if paths else sorted(
        f for f in available if f.endswith(".safetensors")
    )
    for p in wanted:
        if p not in available:
            raise SourceNotFoundError(f"{repo_id} has no file {p!r} (at {source.commit[:12]})", "check the path")
    if not wanted:
        raise CacheError(f"{repo_id} holds no .safetensors artifacts", "push some with `pifi cache push`")
    cache.check_writable()
    incoming = ensure_dir(cache.root / INCOMING_DIR)
    sweep_temp_files(incoming)
    staged: list[tuple[Path | None, CacheKey, ArtifactInfo]] = []
    try:
        for path in wanted:
            staged.append(_stage(cache, source, path, incoming, progress))
        results = []
        for tmp, key, info in staged:
            results.append(_install(cache, tmp, key, info, source) if tmp is not None else cache.get(key))
        return results
    finally:
        for tmp, _, _ in staged:
            if tmp is not None and tmp.exists():
                tmp.unlink()


def _stage(cache: LayerCache, source, path: str, incoming: Path, progress) -> tuple[Path | None, CacheKey, ArtifactInfo]:
    """Header first (refuse non-artifacts), skip data already cached, else download and check the hash."""
    where = f"{source.name}/{path}"
    size = source.size(path)
    tmp = temp_name_for(incoming / PurePosixPath(path).name)
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, file_mode())
    except OSError as err:
        raise storage_error(err, incoming) from None
    try:
        os.ftruncate(fd, size)
        try:
            n = header_length(source.read(path, 0, PREFIX_BYTES) if size >= PREFIX_BYTES else b"", size, where)
        except (NetworkError, OfflineError):  # the network's fault, said as such (not "not an artifact")
            raise
        except PifiError as err:
            raise ArtifactError(f"{where} is not a pifi artifact ({err.message}); refused, nothing was loaded") from None
        peek = source.read(path, PREFIX_BYTES, PREFIX_BYTES + min(n, PEEK_BYTES))  # before the whole header
        if not peek.lstrip(b" \t\r\n").startswith(b"{"):
            raise ArtifactError(f"{where} is not a pifi artifact (its header is not a JSON object); refused, nothing was loaded")
        if n > MAX_HEADER_BYTES:
            raise ArtifactError(f"{where} is not a pifi artifact (a {n}-byte header; a layer's is a few KB); refused")
        _pwrite_all(fd, source.read(path, 0, PREFIX_BYTES + n), 0, incoming)
        try:
            info = read_artifact(tmp)
        except ArtifactError as err:
            raise ArtifactError(f"{where} is not a pifi artifact; refused, nothing was loaded", err.hint) from None
        refuse_format_1(info, where)  # a pulled header must carry its digest: no downgrade to format 1
        key = key_of(info, path)
        if _held(cache, key, info, where) is not None:  # the same artifact is cached: only its header was read
            os.close(fd)
            fd = -1
            tmp.unlink()
            return None, key, info
        tick = (lambda k: progress(k, size)) if progress is not None else None
        for start in range(PREFIX_BYTES + n, size, CHUNK):
            _pwrite_all(fd, source.read(path, start, min(start + CHUNK, size), progress=tick), start, incoming)
        os.fsync(fd)
    except PifiError:  # (NetworkError is an OSError too: it is the network's fault, not the disk's)
        tmp.unlink(missing_ok=True)
        raise
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise storage_error(err, incoming) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if fd >= 0:
            os.close(fd)
    actual = data_sha256(tmp, info.data_start)
    if actual != info.data_sha256:
        tmp.unlink(missing_ok=True)
        raise ArtifactError(f"{where} fails its hash check (data sha256 {actual[:12]}… != {info.data_sha256[:12]}…)",
                            "refused; push it again from a good copy")
    return tmp, key, info


def _held(cache: LayerCache, key: CacheKey, info: ArtifactInfo, where: str) -> CachedArtifact | None:
    """The intact cached artifact of ``key`` if it holds what ``info`` describes; None if ``key`` is missing or
    corrupt (then replaced); :class:`CacheError` if it holds other tensors (a pull never replaces them)."""
    if not cache.path_of(key).is_file():
        return None
    try:
        held, held_info = cache.get_checked(key)
    except ArtifactError:
        return None
    if held_info.data_sha256 == info.data_sha256 and held_info.tensors == info.tensors:
        return held
    origin = f"pulled from {held.pulled_from}" if held.pulled_from else "extracted here"
    raise CacheError(
        f"{where} claims the key {key.display()}, which this cache already holds with other tensors ({origin}, "
        f"data sha256 {held_info.data_sha256[:12]}… vs {info.data_sha256[:12]}…); refused, nothing was replaced",
        f"see which is right with `pifi cache verify --against-source {key.display()}`; to take the pulled one, "
        f"`pifi cache rm {key.display()}` and pull again",
    )


def _install(cache: LayerCache, tmp: Path, key: CacheKey, info: ArtifactInfo, source) -> CachedArtifact:
    with cache.locked(key) as final:
        if _held(cache, key, info, f"{source.name}") is not None:  # written meanwhile (an extract): keep it
            return cache.get(key)
        ensure_dir(final.parent)
        try:
            os.replace(tmp, final)
        except OSError as err:
            raise storage_error(err, final.parent) from None
        cache.record(key, read_artifact(final), info.provenance.get("revision"), overwrite_ref=False)
        cache.write_origin(key, source.name, source.commit)
    return cache.get(key, hit=False)
