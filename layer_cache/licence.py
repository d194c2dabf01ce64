"""A layer is a derivative of its model's weights: carry the source's licence terms along when pushing it.

ONE policy for every upload of a layer artifact (``pifi cache push``, ``pifi push --with-layer``, anything
later): :func:`layer_upload_terms` before anything is created, :meth:`UploadTerms.finish` after the commit.
For every Hub source of the uploaded layers: its gating (``model_info().gated``), its licence (card / artifact
provenance) and the licence files it ships (LICENSE, NOTICE, USE_POLICY...). :func:`check_visibility` refuses
a public push of a gated or licence-restricted layer unless acknowledged; :func:`licence_files` copies the
source's files into the target repo; :func:`mirror_gating` gates the target like the source
(``update_repo_settings(gated=...)``); :func:`licence_section` is what the card says about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from pifi_extract.errors import AccessDeniedError

from .layout import hub_repo_of, key_source_of_provenance

if TYPE_CHECKING:
    from pifi_extract.artifact import ArtifactInfo

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
        """Gated (or gating unknown: the source could not be read), or under a licence that is not a plain
        permissive one."""
        return self.gated is not False or (self.license is not None and self.license.lower() not in PERMISSIVE)


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
        what = ", ".join(f"{t.repo_id} ({'gated' if t.gated else 'gating unknown' if t.gated is None else ''}"
                         f"{', ' if t.gated is not False and t.license else ''}"
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


def gating_mode(terms: Iterable[SourceTerms]) -> str | None:
    """The gating a repo of layers of these sources needs ("manual" wins over "auto"), or None."""
    modes = {t.gated for t in terms if t.gated}
    return None if not modes else "manual" if "manual" in modes or True in modes else "auto"


def mirror_gating(api: Any, repo_id: str, terms: Iterable[SourceTerms]) -> str | None:
    """Gate ``repo_id`` like its gated sources; the mode set, or None."""
    mode = gating_mode(terms)
    if mode is not None:
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


@dataclass(frozen=True)
class UploadTerms:
    """What the licence policy adds to an upload of layers: the sources' terms and licence files."""

    terms: list[SourceTerms]
    files: dict[str, bytes]  # path in the target repo -> bytes (the sources' LICENSE, NOTICE, USE_POLICY...)

    @property
    def gating(self) -> str | None:
        return gating_mode(self.terms)

    def gated(self, repo_id: str) -> bool | None:
        """Whether the Hub source ``repo_id`` is gated (None: unknown)."""
        t = next((t for t in self.terms if t.repo_id == repo_id), None)
        return None if t is None or t.gated is None else bool(t.gated)

    def card_section(self) -> str:
        return licence_section(self.terms, self.files, self.gating)

    def warnings(self, private: bool) -> list[str]:
        out = [f"could not tell whether {t.repo_id} is gated; check its license yourself" for t in self.terms
               if t.gated is None]
        return out + [f"{t.repo_id} is gated: its layers are a derivative of its weights; its license applies"
                      + ("" if private else " (you pushed them to a PUBLIC repo)") for t in self.terms if t.gated]

    def finish(self, api: Any, repo_id: str) -> str | None:
        """After the commit: gate ``repo_id`` like its gated sources; the mode set, or None."""
        return mirror_gating(api, repo_id, self.terms)


def layer_upload_terms(api: Any, artifacts: Iterable["ArtifactInfo"], *, private: bool, i_know_the_license: bool,
                       token: str | None = None) -> UploadTerms:
    """The one licence policy of every upload of layer ``artifacts``: read each Hub source's terms, refuse a public
    repo of gated / licence-restricted layers unless ``i_know_the_license`` (before anything is created), and
    fetch the licence files to copy. Call :meth:`UploadTerms.finish` after the commit."""
    licences: dict[str, str | None] = {}
    for info in artifacts:
        source, kind = key_source_of_provenance(info.provenance)
        if kind == "hub" and isinstance(source, str):
            lic = info.provenance.get("license")
            licences.setdefault(hub_repo_of(source), lic if isinstance(lic, str) else None)
    terms = [source_terms(api, repo, lic) for repo, lic in licences.items()]
    check_visibility(terms, private, i_know_the_license)
    return UploadTerms(terms, licence_files(api, terms, token))
