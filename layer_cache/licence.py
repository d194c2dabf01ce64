"""A layer is a derivative of its model's weights: carry the source's licence terms along when pushing it.

For every Hub source of the pushed layers: its gating (``model_info().gated``), its licence (card / artifact
provenance) and the licence files it ships (LICENSE, NOTICE, USE_POLICY...). :func:`check_visibility` refuses
a public push of a gated or licence-restricted layer unless acknowledged; :func:`licence_files` copies the
source's files into the target repo; :func:`mirror_gating` gates the target like the source
(``update_repo_settings(gated=...)``); :func:`licence_section` is what the card says about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from pifi_extract.errors import AccessDeniedError

LICENSE_FILE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "NOTICE.txt", "NOTICE.md",
                      "USE_POLICY", "USE_POLICY.md")
# licences that put no condition on sharing a derivative beyond attribution (Hub licence ids)
PERMISSIVE = {"apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "cc-by-4.0", "cc0-1.0", "openrail",
              "unlicense", "bsl-1.0", "isc", "cc-by-sa-4.0"}


@dataclass
class SourceTerms:
    repo_id: str
    gated: str | bool | None  # "auto" | "manual" | False | None (unknown)
    license: str | None
    files: list[str] = field(default_factory=list)  # licence files in the source repo

    @property
    def restricted(self) -> bool:
        """Gated, or under a licence that is not a plain permissive one."""
        return bool(self.gated) or (self.license is not None and self.license.lower() not in PERMISSIVE)


def source_terms(api: Any, repo_id: str, license_hint: str | None = None) -> SourceTerms:
    """The gating, licence and licence files of Hub model ``repo_id`` (metadata only; unknown when unreadable)."""
    try:
        info = api.model_info(repo_id)
    except Exception:  # noqa: BLE001 - private, deleted or offline: we cannot tell
        return SourceTerms(repo_id, None, license_hint)
    card = info.card_data.to_dict() if info.card_data is not None else {}
    files = sorted(s.rfilename for s in (info.siblings or []) if s.rfilename in LICENSE_FILE_NAMES)
    return SourceTerms(repo_id, getattr(info, "gated", None) or False, card.get("license") or license_hint, files)


def check_visibility(terms: Iterable[SourceTerms], private: bool, i_know_the_license: bool) -> None:
    """Refuse a public repo of gated / licence-restricted layers unless ``i_know_the_license``."""
    if private or i_know_the_license:
        return
    restricted = [t for t in terms if t.restricted]
    if restricted:
        what = ", ".join(f"{t.repo_id} ({'gated' if t.gated else ''}{', ' if t.gated and t.license else ''}"
                         f"{'licence ' + t.license if t.license else ''})" for t in restricted)
        raise AccessDeniedError(f"refusing a PUBLIC push of layers derived from {what}",
                                "keep the repo private (the default), or pass --i-know-the-license if its "
                                "licence allows redistribution")


def licence_files(api: Any, terms: Iterable[SourceTerms], token: str | None = None) -> dict[str, bytes]:
    """{path in the target repo: bytes} of every source's licence files (at the root for a single source,
    else under ``licenses/<org>--<name>/``); a file that cannot be read is left out."""
    from huggingface_hub import hf_hub_download

    terms = [t for t in terms if t.files]
    out: dict[str, bytes] = {}
    for t in terms:
        prefix = "" if len(terms) == 1 else f"licenses/{t.repo_id.replace('/', '--')}/"
        for name in t.files:
            try:
                path = hf_hub_download(t.repo_id, name, token=token, endpoint=api.endpoint)
            except Exception:  # noqa: BLE001 - the card still names the licence
                continue
            with open(path, "rb") as fh:
                out[prefix + name] = fh.read()
    return out


def mirror_gating(api: Any, repo_id: str, terms: Iterable[SourceTerms]) -> str | None:
    """Gate ``repo_id`` like its gated sources ("manual" wins over "auto"); the mode set, or None."""
    modes = {t.gated for t in terms if t.gated}
    if not modes:
        return None
    mode = "manual" if "manual" in modes or True in modes else "auto"
    api.update_repo_settings(repo_id, gated=mode, repo_type="model")
    return mode


def licence_section(terms: Iterable[SourceTerms], copied: Iterable[str], gating: str | None) -> str:
    """Markdown: the licence of each source, the copied files, the gating applied."""
    terms = list(terms)
    if not terms:
        return ""
    lines = ["", "## Licence", ""]
    for t in terms:
        state = "gated" if t.gated else "not gated" if t.gated is False else "gating unknown"
        lines.append(f"- layers from `{t.repo_id}`: licence **{t.license or 'unknown'}** ({state}); "
                     "they are a derivative of its weights and its licence applies.")
    copied = list(copied)
    if copied:
        lines.append(f"- the source's licence files are copied here: {', '.join(f'`{c}`' for c in copied)}.")
    if any((t.license or "").lower().startswith("llama") for t in terms):
        lines.append("- Built with Llama.")
    if gating:
        lines.append(f"- this repository is gated ({gating} approval), as its source is.")
    return "\n".join(lines) + "\n"
