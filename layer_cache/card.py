"""The README model card of a Hub repo of pifi layer artifacts (pure: facts in, markdown out)."""

from __future__ import annotations

from dataclasses import dataclass

from pifi_extract.inspect import human_bytes

from .layout import hub_repo_of

PIFI_URL = "https://arxiv.org/abs/2506.07424"


@dataclass(frozen=True)
class CardEntry:
    """One pushed artifact, as the card describes it."""

    path: str  # path in the repo (mirrors the cache layout)
    source: str
    kind: str  # "hub" | "local"
    commit: str
    layer_index: int
    num_layers: int | None
    dtype: str  # the tensors' dtype (safetensors name)
    model_type: str
    num_parameters: int
    size: int
    data_sha256: str
    license: str | None


def train_command(repo_id: str, path: str) -> str:
    """The exact command that trains with a pushed artifact."""
    return f"pifi train --task sst2 --slm google-bert/bert-base-uncased --layer-artifact hf://{repo_id}/{path}"


def model_card(repo_id: str, entries: list[CardEntry], gated: dict[str, bool | None], others: list[str] = ()) -> str:
    """Markdown with YAML front matter: sources, commits, licenses, gated warnings, sizes, how to use."""
    licenses = sorted({e.license for e in entries if e.license})
    hub_sources = sorted({hub_repo_of(e.source) for e in entries if e.kind == "hub"})  # repo ids
    front = ["---", f"license: {licenses[0] if len(licenses) == 1 else 'other'}", "library_name: pifi"]
    if hub_sources:
        front += ["base_model:"] + [f"- {s}" for s in hub_sources]
    front += ["tags:", "- pifi", "- pifi-layer-artifact", "---", ""]

    sources = sorted({e.source for e in entries})
    lines = [
        f"# PiFi layer artifacts from {', '.join(sources)}",
        "",
        "Frozen decoder layers extracted with [pifi](https://pypi.org/project/pifi/) (`pifi extract`) for",
        f"[PiFi]({PIFI_URL}) (plug one LLM layer into a small LM and fine-tune it). Each file is a standalone",
        "safetensors artifact: the layer's tensors, the model's final norm, the model's config and provenance;",
        "`pifi` checks its data sha256 on download and on load.",
        "",
    ]
    for source in sources:
        if gated.get(source):
            lines += [
                f"> **Warning: {source} is a gated model.** These layers are a derivative of its weights and its",
                "> license and access conditions apply to them. Keep this repository private (or gated with the same",
                "> conditions) unless the license allows redistribution.",
                "",
            ]
    lines += [
        "| file | source | commit | layer | dtype | parameters | size | data sha256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        of = f"{e.layer_index} of {e.num_layers}" if e.num_layers else str(e.layer_index)
        commit = e.commit[:12] if e.kind == "hub" else f"local ({e.commit[:12]})"
        lines.append(
            f"| `{e.path}` | {e.source} | {commit} | {of} | {e.dtype} | {e.num_parameters:,} | "
            f"{human_bytes(e.size)} | `{e.data_sha256[:16]}…` |"
        )
    if others:
        lines += ["", "Also in this repository: " + ", ".join(f"`{p}`" for p in others)]
    lines += ["", "## License", ""]
    for source in sources:
        mine = [e for e in entries if e.source == source]
        lic = next((e.license for e in mine if e.license), None)
        known = f"`{lic}` (from the source model's card or config)" if lic else "not recorded: check the source model"
        gate = {True: " The source is gated.", False: "", None: " Whether the source is gated could not be checked."}
        lines.append(f"- {source}: license {known}.{gate[gated.get(source)] if mine[0].kind == 'hub' else ''}")
    first = entries[0].path
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        "pip install pifi",
        train_command(repo_id, first),
        "# or fetch every artifact of this repo into the local pifi cache first:",
        f"pifi cache pull {repo_id}",
        "```",
        "",
    ]
    return "\n".join(front + lines)
