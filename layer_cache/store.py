"""The cache folder itself: lookup, locked insert, listing and removal of artifacts, refs and model records.

:class:`LayerCache` knows the layout (:mod:`.layout`) and the file-system rules
(:mod:`.fsutil`); it never contacts the network. Every write of an artifact happens
under that key's lock, through a temp name and an atomic rename.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from pifi_extract.artifact import ArtifactInfo, read_artifact
from pifi_extract.errors import ArtifactError, PifiError
from pifi_extract.plan import resolve_layer_index

from . import integrity, ownership
from .fsutil import check_writable, ensure_dir, key_lock, make_read_only, read_json, sweep_temp_files, write_atomic, write_json
from .pifi_files import temp_file_sizes
from .tidy import apply as remove_planned, plan_tidy as plan_removals
from .layout import (
    INCOMING_DIR,
    LOCKS_DIR,
    MODEL_JSON,
    REFS_DIR,
    CacheKey,
    cache_root,
    dtype_tag,
    key_source_of_provenance,
    origin_name,
    parse_artifact_filename,
    source_dir_name,
)


@dataclass(frozen=True)
class CachedArtifact:
    """One artifact in the cache, as ``pifi cache ls`` shows it."""

    key: CacheKey
    path: Path
    size: int
    num_parameters: int
    num_layers: int | None
    model_type: str
    data_sha256: str
    last_used: float
    refs: tuple[str, ...] = ()
    pulled_from: str | None = None  # the Hub repo a pulled artifact came from (None: extracted here)
    hit: bool = True  # False when the call that returned it extracted or downloaded it

    @property
    def reference(self) -> str:
        return self.key.display()

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("key", "path", "hit")}
        out.update(asdict(self.key), path=str(self.path), reference=self.reference)
        return out


def local_fingerprint(path: str | os.PathLike[str]) -> str:
    """Identity of a local source: names, sizes and mtimes of its config and weight files (stat only)."""
    root = Path(path).expanduser().resolve()
    if root.is_file():
        files = [root]
    else:
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".gguf"))
    lines = []
    for p in files:
        st = p.stat()
        lines.append(f"{p.name}\t{st.st_size}\t{st.st_mtime_ns}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


class LayerCache:
    """A pifi cache folder (``--cache-dir`` > ``PIFI_CACHE`` > ``~/.cache/pifi``)."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.root = cache_root(cache_dir)

    # ---- paths -------------------------------------------------------------------------------
    def source_dir(self, source: str, kind: str) -> Path:
        return self.root / source_dir_name(source, kind)

    def path_of(self, key: CacheKey) -> Path:
        return self.root / key.dir_name / key.commit / key.filename

    def check_writable(self) -> None:
        self.claim_root()
        check_writable(self.root)

    def claim_root(self) -> None:
        """Create the root if needed and tag it as pifi's; refuse (:class:`CacheError`) a folder that holds files
        but no marker: pifi writes only into a folder it created (or one adopted with ``pifi cache adopt``)."""
        created = not os.path.lexists(self.root)
        ensure_dir(self.root)
        if not ownership.claim(self.root, created=created):
            raise ownership.not_pifi_cache(self.root)

    # ---- refs and model records ----------------------------------------------------------------
    def read_ref(self, source: str, kind: str, revision: str) -> str | None:
        try:
            commit = (self.source_dir(source, kind) / REFS_DIR / revision).read_text().strip()
        except (OSError, ValueError):
            return None
        return commit or None

    def refs(self, source_dir: Path) -> dict[str, str]:
        """revision name -> commit, for one source folder."""
        folder = source_dir / REFS_DIR
        out = {}
        if folder.is_dir():
            for p in sorted(folder.rglob("*")):
                if p.is_file() and not p.name.startswith("."):
                    out[p.relative_to(folder).as_posix()] = p.read_text().strip()
        return out

    def write_ref(self, source: str, kind: str, revision: str, commit: str, *, overwrite: bool = True) -> None:
        """Record that ``revision`` resolved to ``commit`` (best effort: a read-only shared cache still works)."""
        if not revision or ".." in revision.split("/") or revision.startswith("/"):
            return
        path = self.source_dir(source, kind) / REFS_DIR / revision
        if not overwrite and path.exists():
            return
        try:
            if self.read_ref(source, kind, revision) != commit:
                self.claim_root()
                write_atomic(path, commit.encode())
        except PifiError:
            pass

    def model_record(self, commit_dir: Path) -> dict[str, Any] | None:
        """What the artifacts of one commit share (source, kind, num_layers, source_dtype, ...)."""
        record = read_json(commit_dir / MODEL_JSON)
        if record is not None:
            return record
        for path in sorted(commit_dir.glob("layer-*.safetensors")):
            try:
                return self._record_from(read_artifact(path), kind=None)
            except PifiError:
                continue
        return None

    @staticmethod
    def _record_from(info: ArtifactInfo, kind: str | None) -> dict[str, Any]:
        prov = info.provenance
        keys = ("source", "source_kind", "revision", "commit", "num_layers", "source_dtype", "license", "model_type")
        record = {k: prov.get(k) for k in keys}
        source, own_kind = key_source_of_provenance(prov)
        record["source"], record["kind"] = source, kind or own_kind
        return record

    # ---- lookup --------------------------------------------------------------------------------
    def find(self, source: str, kind: str, commit: str, layer: int, dtype: str = "keep") -> CacheKey | None:
        """The key of an existing artifact for (source, commit, layer as requested, dtype choice), or None.

        Negative layers and dtype aliases are resolved with the commit's model record, read from disk.
        """
        commit_dir = self.source_dir(source, kind) / commit
        if not commit_dir.is_dir():
            return None
        record = self.model_record(commit_dir) or {}
        num_layers = record.get("num_layers")
        if isinstance(num_layers, int) and num_layers > 0:
            layer = resolve_layer_index(layer, num_layers)  # LayerIndexError names the valid range
        elif layer < 0:
            return None
        key = CacheKey(source, kind, commit, layer, dtype_tag(dtype, record.get("source_dtype")))
        return key if self.path_of(key).is_file() else None

    def get(self, key: CacheKey, *, hit: bool = True) -> CachedArtifact:
        """The artifact of ``key``, its integrity checked (memo, else full hash); refuses a corrupt one."""
        return self.get_checked(key, hit=hit)[0]

    def get_checked(self, key: CacheKey, *, hit: bool = True) -> tuple[CachedArtifact, ArtifactInfo]:
        """:meth:`get` and the parsed header it checked (so a caller parses and hashes nothing again)."""
        path = self.path_of(key)
        info = integrity.checked(path, key.display())
        return self._entry(key, path, info, hit=hit), info

    def _entry(self, key: CacheKey, path: Path, info: ArtifactInfo, *, hit: bool = True) -> CachedArtifact:
        refs = tuple(name for name, c in self.refs(self.root / key.dir_name).items() if c == key.commit)
        num_layers = info.provenance.get("num_layers")
        return CachedArtifact(
            key=key,
            path=path,
            size=info.size,
            num_parameters=info.num_parameters,
            num_layers=num_layers if isinstance(num_layers, int) else None,
            model_type=info.model_type,
            data_sha256=info.data_sha256,
            last_used=integrity.last_used(path),
            refs=refs,
            pulled_from=self.origin(path),
            hit=hit,
        )

    @staticmethod
    def origin(path: Path) -> str | None:
        """``ORG/REPO`` a pulled artifact came from, recorded by :func:`layer_cache.pull.pull`."""
        record = read_json(path.with_name(origin_name(path.name)))
        value = record.get("pulled_from") if record else None
        return value if isinstance(value, str) else None

    def write_origin(self, key: CacheKey, repo_id: str, commit: str) -> None:
        try:
            write_json(self.path_of(key).with_name(origin_name(key.filename)), {"pulled_from": repo_id, "commit": commit})
        except PifiError:
            pass

    # ---- insert ----------------------------------------------------------------------------------
    @contextmanager
    def locked(self, key: CacheKey, on_wait: Callable[[], None] | None = None) -> Iterator[Path]:
        """Hold ``key``'s lock; sweep its stale temp files; yield the artifact's final path."""
        path = self.path_of(key)
        self.claim_root()
        with key_lock(self.root / LOCKS_DIR / key.lock_name, on_wait):
            sweep_temp_files(path.parent, path.name, locked=True)
            yield path

    def record(self, key: CacheKey, info: ArtifactInfo, revision: str | None, *, overwrite_ref: bool = True) -> None:
        """After an artifact landed at ``path_of(key)``: its memo, the commit's model record, the ref."""
        make_read_only(info.path)
        integrity.write_memo(info)
        commit_dir = self.path_of(key).parent
        if read_json(commit_dir / MODEL_JSON) is None:
            try:
                write_json(commit_dir / MODEL_JSON, {**self._record_from(info, key.kind), "source": key.source})
            except PifiError:
                pass
        if key.kind == "hub" and revision != key.commit:
            self.write_ref(key.source, key.kind, revision or "main", key.commit, overwrite=overwrite_ref)

    # ---- listing and removal -------------------------------------------------------------------
    def keys(self) -> list[CacheKey]:
        """Every complete artifact in the cache (temp files and anything else are ignored)."""
        out = []
        if not self.root.is_dir():
            return out
        for source_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for commit_dir in sorted(p for p in source_dir.iterdir() if p.is_dir() and p.name != REFS_DIR):
                record = None
                for path in sorted(commit_dir.iterdir()):
                    parsed = parse_artifact_filename(path.name)
                    if parsed is None or not path.is_file():
                        continue
                    record = record or self.model_record(commit_dir) or {}
                    source, kind = record.get("source"), record.get("kind")
                    if not isinstance(source, str) or source_dir_name(source, kind) != source_dir.name:
                        continue  # a folder pifi did not write: not listed
                    out.append(CacheKey(source, kind, commit_dir.name, parsed[0], parsed[1]))
        return out

    def entries(self) -> list[CachedArtifact]:
        """:meth:`keys` with sizes and header facts (headers only; unreadable files are listed as such)."""
        out = []
        for key in self.keys():
            path = self.path_of(key)
            try:
                out.append(self._entry(key, path, read_artifact(path)))
            except ArtifactError:
                st = path.stat()
                out.append(CachedArtifact(key, path, st.st_size, 0, None, "?", "", integrity.last_used(path)))
        return out

    def temp_files(self) -> list[tuple[Path, int]]:
        """(path, size) of every temp file of a writer in progress or crashed (``ls`` and ``--max-size`` count them)."""
        folders = [self.root / INCOMING_DIR] + [c for s in ownership.source_dirs(self.root) for c in ownership.commit_dirs(s)]
        return [(p, size) for folder in folders for p, size in temp_file_sizes(folder)]

    def remove(self, key: CacheKey) -> list[Path]:
        """Delete one artifact and its memo (under its lock), then what :meth:`tidy` plans; the paths removed.

        Raises :class:`CacheError` for a root that is not a pifi cache or an artifact reached through a link.
        """
        path = self.path_of(key)
        plan_removals(self.root, [path])  # refuses before anything is touched
        with self.locked(key) as path:
            first = plan_removals(self.root, [path])
            own = [p for p in first if p.parent == path.parent and p.name.startswith((path.name, f".{path.name}."))]
            removed = remove_planned(own)
        return removed + self.tidy()

    def plan_tidy(self, artifacts: list[Path] = ()) -> list[Path]:  # type: ignore[assignment]
        """What removing ``artifacts`` and sweeping leftovers would remove (see :mod:`.tidy`)."""
        return plan_removals(self.root, list(artifacts))

    def tidy(self) -> list[Path]:
        """Remove stale temp files, commit folders left without artifacts, refs to them, empty source folders."""
        if not self.root.is_dir():
            return []
        return remove_planned(plan_removals(self.root))
