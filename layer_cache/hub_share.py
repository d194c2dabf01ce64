"""Share cached artifacts through a Hub model repo: ``push`` (with a model card) and ``pull`` (verified).

Pushed files keep their cache path (``models--org--name/<commit>/layer-31.safetensors``), so a
pulled artifact lands under the same key as if it had been extracted locally, and
``pifi extract`` of that layer becomes a cache hit. ``pull`` reads each file's header first
(two range requests) and refuses anything that is not a pifi artifact before downloading its
data; the data sha256 is checked before the file enters the cache.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Sequence

from huggingface_hub import CommitOperationAdd, HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

from pifi_extract.artifact import ArtifactInfo, data_sha256, read_artifact, verify_artifact
from pifi_extract.errors import AccessDeniedError, ArtifactError, CacheError, PifiError, SourceNotFoundError
from pifi_extract.safetensors_header import PREFIX_BYTES, header_length
from pifi_extract.writer import TMP_MARKER

from .card import CardEntry, model_card
from .fsutil import ensure_dir, file_mode, storage_error, sweep_temp_files
from .layout import (
    INCOMING_DIR,
    CacheKey,
    dtype_tag_of_provenance,
    hub_repo_of,
    key_source_of_provenance,
    parse_rel_path,
    source_dir_name,
)
from .resolver import resolve_reference
from .store import CachedArtifact, LayerCache

CHUNK = 8 << 20
_SAFE_COMMIT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
_SAFE_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_SAFE_HUB_GGUF = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(/[\w.-]+)+\.gguf$")  # ORG/REPO/FILE.gguf


def key_of(info: ArtifactInfo, repo_path: str | None = None) -> CacheKey:
    """The cache key an artifact belongs under, from its own provenance (validated: it may come from anywhere)."""
    prov = info.provenance
    source, kind = key_source_of_provenance(prov)
    commit = prov.get("commit")
    valid_hub = isinstance(source, str) and (_SAFE_REPO.match(source) or _SAFE_HUB_GGUF.match(source)) and ".." not in source
    if not isinstance(source, str) or (kind == "hub" and not valid_hub):
        raise ArtifactError(f"{info.path}: its provenance names no valid source ({source!r})")
    if not commit:  # a local source: keep the folder it was pushed from, else name it by its data
        parsed = parse_rel_path(repo_path) if repo_path else None
        ok = parsed is not None and parsed[0] == source_dir_name(source, kind)
        commit = parsed[1] if ok else info.data_sha256[:16]
    if not isinstance(commit, str) or not _SAFE_COMMIT.match(commit):
        raise ArtifactError(f"{info.path}: its provenance has an invalid commit {commit!r}")
    return CacheKey(source, kind, commit, info.layer_index, dtype_tag_of_provenance(prov))


# ---- push ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit: str | None
    paths: list[str]
    warnings: list[str]
    card: str


@contextlib.contextmanager
def _write_errors(repo_id: str) -> Iterator[None]:
    hint = "log in with a token that has write access (`hf auth login`), or pass --token / set HF_TOKEN"
    try:
        yield
    except LocalTokenNotFoundError:
        raise AccessDeniedError(f"pushing to {repo_id} needs a Hub token with write access", hint) from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise AccessDeniedError(f"no write access to {repo_id} (HTTP {status})", hint) from None
        raise PifiError(f"the Hub refused the push to {repo_id} (HTTP {status}): {err}", "try again later") from None


def _is_gated(api: HfApi, repo_id: str) -> bool | None:
    try:
        return bool(api.model_info(repo_id).gated)
    except Exception:  # private, unknown, offline: we cannot tell
        return None


def push(
    references: Sequence[str],
    to: str,
    *,
    private: bool = True,
    token: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    i_know_the_license: bool = False,
) -> PushResult:
    """Upload artifacts (any references) and a model card to the model repo ``to`` (created private by default).

    Layers of gated or licence-restricted sources: a public push is refused unless ``i_know_the_license``;
    the sources' licence files are copied and their gating mirrored on ``to`` (:mod:`layer_cache.licence`)."""
    from .licence import check_visibility, licence_files, licence_section, mirror_gating, source_terms

    if not _SAFE_REPO.match(to) or "/" not in to:
        raise CacheError(f"--to {to!r} is not a Hub repo id", "use ORG/REPO")
    files: dict[str, Path] = {}
    entries = []
    for ref in references:
        resolved = resolve_reference(ref, cache_dir=cache_dir, token=token)
        info = verify_artifact(resolved.path)  # never upload a corrupt file
        key = resolved.cached.key if resolved.cached else key_of(info)
        rel = str(key.rel_path)
        if rel not in files:
            files[rel] = resolved.path
            entries.append(_card_entry(rel, key, info))
    api = HfApi(endpoint=constants.ENDPOINT, token=token)
    licences = {e.source: e.license for e in entries if e.kind == "hub"}
    terms = [source_terms(api, hub_repo_of(src), lic) for src, lic in licences.items()]
    check_visibility(terms, private, i_know_the_license)  # before anything is created
    with _write_errors(to):
        api.create_repo(to, private=private, exist_ok=True, repo_type="model")
    gated = {e.source: _is_gated(api, hub_repo_of(e.source)) for e in entries if e.kind == "hub"}
    warnings = [
        f"{src} is gated: its layers are a derivative of its weights; its license applies"
        + ("" if private else " (you pushed them to a PUBLIC repo)")
        for src, g in gated.items()
        if g
    ]
    try:
        others = [f for f in api.list_repo_files(to) if f.endswith(".safetensors") and f not in files]
    except Exception:
        others = []
    copies = licence_files(api, terms, token)
    gating = next((t.gated for t in terms if t.gated), None)
    card = model_card(to, entries, gated, others) + licence_section(terms, copies, "manual" if gating is True else gating)
    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in files.items()]
    ops += [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=data) for rel, data in copies.items()]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
    with _write_errors(to):
        info = api.create_commit(to, ops, commit_message=f"pifi: add {len(files)} layer artifact(s)")
        mirror_gating(api, to, terms)
    return PushResult(to, getattr(info, "oid", None), list(files), warnings, card)


def _card_entry(rel: str, key: CacheKey, info: ArtifactInfo) -> CardEntry:
    prov = info.provenance
    return CardEntry(
        path=rel,
        source=key.source,
        kind=key.kind,
        commit=key.commit,
        layer_index=key.layer_index,
        num_layers=prov.get("num_layers"),
        dtype=str(prov.get("dtype")),
        model_type=info.model_type,
        num_parameters=info.num_parameters,
        size=info.size,
        data_sha256=info.data_sha256,
        license=prov.get("license"),
    )


# ---- pull ----------------------------------------------------------------------------------------
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
            results.append(_install(cache, tmp, key, info) if tmp is not None else cache.get(key))
        return results
    finally:
        for tmp, _, _ in staged:
            if tmp is not None and tmp.exists():
                tmp.unlink()


def _stage(cache: LayerCache, source, path: str, incoming: Path, progress) -> tuple[Path | None, CacheKey, ArtifactInfo]:
    """Header first (refuse non-artifacts), skip data already cached, else download and check the hash."""
    where = f"{source.name}/{path}"
    size = source.size(path)
    tmp = incoming / f".{PurePosixPath(path).name}{TMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, file_mode())
    except OSError as err:
        raise storage_error(err, incoming) from None
    try:
        os.ftruncate(fd, size)
        try:
            n = header_length(source.read(path, 0, PREFIX_BYTES), size, where)
        except PifiError as err:
            raise ArtifactError(f"{where} is not a pifi artifact ({err.message}); refused, nothing was loaded") from None
        os.pwrite(fd, source.read(path, 0, PREFIX_BYTES + n), 0)
        try:
            info = read_artifact(tmp)
        except ArtifactError as err:
            raise ArtifactError(f"{where} is not a pifi artifact; refused, nothing was loaded", err.hint) from None
        key = key_of(info, path)
        existing = cache.path_of(key)
        if existing.is_file() and read_artifact(existing).data_sha256 == info.data_sha256:
            try:
                cache.get(key)
                os.close(fd)
                fd = -1
                tmp.unlink()
                return None, key, info
            except ArtifactError:
                pass  # the cached copy is corrupt: replace it
        tick = (lambda k: progress(k, size)) if progress is not None else None
        for start in range(PREFIX_BYTES + n, size, CHUNK):
            os.pwrite(fd, source.read(path, start, min(start + CHUNK, size), progress=tick), start)
        os.fsync(fd)
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


def _install(cache: LayerCache, tmp: Path, key: CacheKey, info: ArtifactInfo) -> CachedArtifact:
    with cache.locked(key) as final:
        ensure_dir(final.parent)
        try:
            os.replace(tmp, final)
        except OSError as err:
            raise storage_error(err, final.parent) from None
        cache.record(key, read_artifact(final), info.provenance.get("revision"), overwrite_ref=False)
    return cache.get(key, hit=False)
