"""Where things live in the cache (pure: names in, names out; no I/O except reading the environment).

The layout follows the Hugging Face cache, so a person can browse it::

    <root>/
      models--meta-llama--Llama-3.1-8B/         one folder per source (Hub repo id)
        refs/main                               text: the commit sha `main` resolved to
        <commit sha>/
          model.json                            what the artifacts share: source, layer count, ...
          layer-31.safetensors                  dtype as in the source (`--dtype keep`)
          layer-31.bf16.safetensors             converted to bf16
          .layer-31.safetensors.pifi-ok         integrity memo (size, mtime, sha256); its mtime = last used
          .layer-31.safetensors.pifi-origin     a pulled artifact: the Hub repo it came from
      models--org--name--model.Q8_0.gguf/       a GGUF file of a Hub repo (`--gguf-file`): a source of its own
      local--my-model--1a2b3c4d/                a local folder or .gguf file (name + hash of its absolute path)
        <fingerprint>/layer-3.safetensors       fingerprint of the folder's file names, sizes and mtimes
      .locks/                                   one lock file per key
      .incoming/                                downloads in progress (pull)
      CACHEDIR.TAG, .pifi-cache                 the tag that makes this folder pifi's (see ownership.py)

A key is (source, commit, resolved layer index, dtype). ``keep`` is stored without a
dtype tag; asking for the dtype the source already has is the same key as ``keep``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pifi_extract.errors import ArtifactError, ConfigError
from pifi_extract.plan import DTYPE_CHOICES

if TYPE_CHECKING:
    from pifi_extract.artifact import ArtifactInfo

ENV_VAR = "PIFI_CACHE"
DTYPE_TAGS = tuple(DTYPE_CHOICES)  # keep, bf16, fp16, fp32 (the one list lives in pifi_extract.plan)
_SAFETENSORS_OF = {k: v for k, v in DTYPE_CHOICES.items() if v is not None}
# safetensors dtype name -> `--dtype` choice
_CHOICE_OF = {v: k for k, v in _SAFETENSORS_OF.items()}
ARTIFACT_RE = re.compile(r"^layer-(?P<layer>\d+)(?:\.(?P<dtype>bf16|fp16|fp32))?\.safetensors$")
MODEL_JSON = "model.json"
REFS_DIR = "refs"
LOCKS_DIR = ".locks"
INCOMING_DIR = ".incoming"
MEMO_SUFFIX = ".pifi-ok"
ORIGIN_SUFFIX = ".pifi-origin"  # beside a pulled artifact: {"pulled_from": ORG/REPO, "commit": ...}
HUB_PREFIX = "models--"
LOCAL_PREFIX = "local--"
FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/pifi``, else ``~/.cache/pifi``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pifi"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``cache_dir`` (``--cache-dir``) > ``$PIFI_CACHE`` > :func:`default_cache_root`."""
    chosen = cache_dir if cache_dir not in (None, "") else os.environ.get(ENV_VAR) or None
    return Path(chosen).expanduser().absolute() if chosen is not None else default_cache_root()


def dtype_tag(choice: str, source_dtype: object = None) -> str:
    """The dtype part of a key: ``keep`` when ``choice`` is keep or equals the source's own dtype."""
    if choice not in DTYPE_TAGS:
        raise ConfigError(f"unknown dtype {choice!r}", f"use one of {', '.join(DTYPE_TAGS)}")
    if choice != "keep" and isinstance(source_dtype, str) and _SAFETENSORS_OF[choice] == source_dtype:
        return "keep"
    return choice


def dtype_tag_of_provenance(provenance: dict) -> str:
    """The key dtype of an existing artifact, from its provenance (``dtype`` vs ``source_dtype``)."""
    dtype, source_dtype = provenance.get("dtype"), provenance.get("source_dtype")
    if dtype == source_dtype or not isinstance(dtype, str) or dtype not in _CHOICE_OF:  # a list: mixed, kept
        return "keep"
    return _CHOICE_OF[dtype]


def artifact_filename(layer_index: int, dtype: str = "keep") -> str:
    """``layer-31.safetensors`` or ``layer-31.bf16.safetensors``."""
    tag = "" if dtype == "keep" else f".{dtype}"
    return f"layer-{layer_index}{tag}.safetensors"


def parse_artifact_filename(name: str) -> tuple[int, str] | None:
    """(layer index, dtype tag) of a cache artifact file name; None for anything else (temp files...)."""
    m = ARTIFACT_RE.match(name)
    return (int(m["layer"]), m["dtype"] or "keep") if m else None


def _safe_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


def source_dir_name(source: str, kind: str) -> str:
    """``models--org--name`` for a Hub repo id (``models--org--name--file.gguf`` for a GGUF file of one);
    ``local--<name>--<hash8>`` for a local path."""
    if kind == "hub":
        return HUB_PREFIX + "--".join(source.split("/"))
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:8]
    return f"{LOCAL_PREFIX}{_safe_part(Path(source).name)}--{digest}"


def key_source_of_provenance(provenance: dict) -> tuple[object, str]:
    """(key source, kind) an artifact's provenance belongs under.

    A file of a Hub repo read as GGUF (``--gguf-file``) is the Hub source ``ORG/REPO/FILE.gguf``
    (folder ``models--ORG--REPO--FILE.gguf``): each GGUF file of a repo is a model of its own.
    """
    source, source_kind = provenance.get("source"), provenance.get("source_kind")
    if source_kind == "gguf" and provenance.get("gguf_host") == "hub":
        file = provenance.get("gguf_file")
        return (f"{source}/{file}" if isinstance(source, str) and isinstance(file, str) else None), "hub"
    return source, ("hub" if source_kind == "hub" else "local")


def hub_repo_of(source: str) -> str:
    """The repo id of a Hub key source: ``ORG/REPO`` of ``ORG/REPO`` or of ``ORG/REPO/FILE.gguf``."""
    return "/".join(source.split("/")[:2])


def repo_id_of_dir(name: str) -> str | None:
    """Inverse of :func:`source_dir_name` for Hub folders (None for local ones): a repo id or ``org/name/file.gguf``."""
    return name[len(HUB_PREFIX) :].replace("--", "/") if name.startswith(HUB_PREFIX) else None


def memo_name(artifact_name: str) -> str:
    return f".{artifact_name}{MEMO_SUFFIX}"


def origin_name(artifact_name: str) -> str:
    return f".{artifact_name}{ORIGIN_SUFFIX}"


@dataclass(frozen=True)
class CacheKey:
    """What identifies one cached artifact."""

    source: str  # Hub repo id (``org/name/file.gguf`` for a GGUF file), or the absolute path of a local source
    kind: str  # "hub" | "local"
    commit: str  # resolved commit sha (hub) or fingerprint (local)
    layer_index: int  # resolved, >= 0
    dtype: str = "keep"  # dtype tag: keep | bf16 | fp16 | fp32

    @property
    def dir_name(self) -> str:
        return source_dir_name(self.source, self.kind)

    @property
    def filename(self) -> str:
        return artifact_filename(self.layer_index, self.dtype)

    @property
    def rel_path(self) -> PurePosixPath:
        """Path inside the cache (and inside a repo it was pushed to)."""
        return PurePosixPath(self.dir_name, self.commit, self.filename)

    @property
    def lock_name(self) -> str:
        name = f"{self.dir_name}--{self.commit}--{self.filename}.lock"
        return name if len(name) < 200 else hashlib.sha256(name.encode()).hexdigest() + ".lock"

    def display(self) -> str:
        """A reference the resolver maps back to exactly this artifact: ``org/name@abc123def456:31[:bf16]``."""
        tag = "" if self.dtype == "keep" else f":{self.dtype}"
        return f"{self.source}@{self.commit[:12]}:{self.layer_index}{tag}"


def parse_rel_path(rel: str | PurePosixPath) -> tuple[str, str, int, str] | None:
    """(source dir name, commit, layer, dtype) of a layout path ``<dir>/<commit>/layer-N[.dt].safetensors``."""
    parts = PurePosixPath(rel).parts
    if len(parts) < 3:
        return None
    dir_name, commit, filename = parts[-3:]
    parsed = parse_artifact_filename(filename)
    if parsed is None or not dir_name.startswith((HUB_PREFIX, LOCAL_PREFIX)) or not _safe_part(commit) == commit:
        return None
    return dir_name, commit, parsed[0], parsed[1]


SAFE_COMMIT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")  # a commit folder name
SAFE_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_SAFE_HUB_GGUF = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(/[\w.-]+)+\.gguf$")  # ORG/REPO/FILE.gguf


def key_of(info: ArtifactInfo, repo_path: str | None = None) -> CacheKey:
    """The cache key an artifact belongs under, from its own provenance (validated: it may come from anywhere)."""
    prov = info.provenance
    source, kind = key_source_of_provenance(prov)
    commit = prov.get("commit")
    valid_hub = isinstance(source, str) and (SAFE_REPO.match(source) or _SAFE_HUB_GGUF.match(source)) and ".." not in source
    if not isinstance(source, str) or (kind == "hub" and not valid_hub):
        raise ArtifactError(f"{info.path}: its provenance names no valid source ({source!r})")
    if not commit:  # a local source: keep the folder it was pushed from, else name it by its data
        parsed = parse_rel_path(repo_path) if repo_path else None
        ok = parsed is not None and parsed[0] == source_dir_name(source, kind)
        commit = parsed[1] if ok else info.data_sha256[:16]
    if not isinstance(commit, str) or not SAFE_COMMIT.match(commit):
        raise ArtifactError(f"{info.path}: its provenance has an invalid commit {commit!r}")
    layer = prov.get("layer_index")
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < 1 << 20:
        raise ArtifactError(f"{info.path}: its provenance has an invalid layer_index {str(layer)[:40]!r}",
                            "refused; push it again from an artifact made by `pifi extract`")
    return CacheKey(source, kind, commit, layer, dtype_tag_of_provenance(prov))
