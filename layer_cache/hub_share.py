"""Share cached artifacts through a Hub model repo: ``push`` (with a model card); ``pull`` lives in :mod:`.pull`.

Pushed files keep their cache path (``models--org--name/<commit>/layer-31.safetensors``), so a
pulled artifact lands under the same key as if it had been extracted locally, and
``pifi extract`` of that layer becomes a cache hit. Module order: store < pull < resolver < push.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError

from pifi_extract.artifact import ArtifactInfo
from pifi_extract.errors import CacheError
from pifi_extract.hub_source import hub_errors

from .card import CardEntry, model_card
from .integrity import uploadable
from .licence import layer_upload_terms
from .layout import SAFE_REPO, CacheKey, hub_repo_of, key_of
from .pull import pull
from .resolver import resolve_reference

__all__ = ["PushResult", "key_of", "pull", "push"]


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit: str | None
    paths: list[str]
    warnings: list[str]
    card: str


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
    if not SAFE_REPO.match(to) or "/" not in to:
        raise CacheError(f"--to {to!r} is not a Hub repo id", "use ORG/REPO")
    files: dict[str, Path] = {}
    entries, infos = [], []
    for ref in references:
        resolved = resolve_reference(ref, cache_dir=cache_dir, token=token)
        info = uploadable(resolved.path, ref)
        key = resolved.cached.key if resolved.cached else key_of(info)
        rel = str(key.rel_path)
        if rel not in files:
            files[rel] = resolved.path
            entries.append(_card_entry(rel, key, info))
            infos.append(info)
    from huggingface_hub import CommitOperationAdd, HfApi  # ~0.1 s: only a push pays for it

    api = HfApi(endpoint=constants.ENDPOINT, token=token)
    terms = layer_upload_terms(api, infos, private=private, i_know_the_license=i_know_the_license, token=token)
    with hub_errors(to, push=True):  # (the licence policy refused what it must before anything was created)
        api.create_repo(to, private=private, exist_ok=True, repo_type="model")
    warnings = terms.warnings(private)
    gated = {e.source: terms.gated(hub_repo_of(e.source)) for e in entries if e.kind == "hub"}
    try:
        others = [f for f in api.list_repo_files(to) if f.endswith(".safetensors") and f not in files]
    except (HfHubHTTPError, OSError, ValueError) as err:
        warnings.append(f"could not list the files already in {to} ({type(err).__name__}); the card lists only this push")
        others = []
    card = model_card(to, entries, gated, others) + terms.card_section()
    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in files.items()]
    ops += [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=data) for rel, data in terms.files.items()]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
    with hub_errors(to, push=True):
        info = api.create_commit(to, ops, commit_message=f"pifi: add {len(files)} layer artifact(s)")
        terms.finish(api, to)
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
