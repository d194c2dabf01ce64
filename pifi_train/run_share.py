"""Share a fine-tuned PiFi run through a Hub model repo: ``pifi push`` and ``hf://ORG/REPO[@REV]`` run dirs.

A pushed repo holds the run's ``config.json``, ``metrics.json``, ``checkpoint/`` (trainable tensors only,
the SLM config and tokenizer), ``pifi_share.json`` (where each layer comes from: source model, commit,
layer index, dtype, sha256) and a model card. The frozen layer goes by reference; ``with_layer`` also
uploads the artifact(s) under ``layers/``. :func:`pull_run` downloads the run (Hugging Face cache) and
finds each layer in the pifi cache, else in the same repo, else extracts it from the source model by
range reads (:func:`layer_cache.get_or_extract`); everything is cached, so later calls work offline.
Torch-free.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ArtifactError, ConfigError

from . import run_files
from .families import family_of_record
from .options import default_of, option_fields

SHARE_FILE = "pifi_share.json"
LAYERS_DIR = "layers"
RUN_FILES = (run_files.CONFIG, run_files.METRICS, SHARE_FILE, f"{run_files.CHECKPOINT_DIR}/*")
_HF_RUN = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(@(?P<rev>[\w./-]+))?/?$")
_NOT_REPRODUCED = ("output_dir", "overwrite", "device", "report_to", "num_workers")


@dataclass(frozen=True)
class PushedRun:
    repo_id: str
    commit: str | None
    paths: list[str]
    card: str


def _layer_sources(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Where each of the run's layers comes from, read from the artifacts' own provenance."""
    from layer_cache.layout import dtype_tag_of_provenance
    from pifi_extract.artifact import read_artifact

    from .layer_ref import describe_artifact, recorded_layers

    sources = []
    for entry in recorded_layers(record):
        path = entry.get("path")
        if not path or not Path(path).is_file():
            path = str(describe_artifact(str(entry.get("reference")), verify=False).path)
        info = read_artifact(path)
        if info.data_sha256 != entry.get("sha256"):
            raise ArtifactError(f"{path} is not the layer this run was trained with (sha256 differs)")
        prov = info.provenance
        sources.append({"sha256": info.data_sha256, "source": prov.get("source"), "source_kind": prov.get("source_kind"),
                        "commit": prov.get("commit"), "layer_index": info.layer_index,
                        "dtype": dtype_tag_of_provenance(prov), "license": prov.get("license"),
                        "model_type": info.model_type, "local_path": str(path)})
    return sources


def reproduce_command(options: dict[str, Any], layers: Sequence[dict[str, Any]]) -> str:
    """The ``pifi train`` command line of a run: every option that differs from its default."""
    words = ["pifi", "train"]
    for f in option_fields():
        default = default_of(f)
        value = options.get(f.name, default)
        if f.name in _NOT_REPRODUCED or f.name == "layer_artifact" or value == default:
            continue
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            on, _, off = flag.partition("/")
            words.append(on if value else (off or "--no-" + on[2:]))
        elif isinstance(value, list):
            for item in value:
                words += [flag, _quote(str(item))]
        elif value is not None:
            words += [flag, _quote(str(value))]
    for layer in layers:
        tag = "" if layer["dtype"] == "keep" else f":{layer['dtype']}"
        key = f"{layer['source']}@{layer['commit']}:{layer['layer_index']}{tag}" if layer.get("commit") else layer["local_path"]
        words += ["--layer-artifact", _quote(key)]
    return " ".join(words)


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


_PIPELINE_TAGS = {"classification": "text-classification", "qa": "question-answering",
                  "seq2seq": "text2text-generation"}
_USAGE = {"classification": ('--text "a sentence to classify"', "a sentence to classify"),
          "qa": ('--question "Who?" --context "A passage that answers it."', None),
          "seq2seq": ('--text "a source sentence"', None)}


def run_card(repo_id: str, record: dict[str, Any], metrics: dict[str, Any] | None, layers: Sequence[dict[str, Any]]
             ) -> str:
    """The model card: family, task, SLM, each layer's source/commit/index/sha256, the family's test metrics,
    how to use and reproduce."""
    family = family_of_record(record)
    options = record["options"]
    task = options.get("task") or Path(options.get("train_file") or "local data").name
    licences = sorted({str(layer["license"]) for layer in layers if layer.get("license")})
    bases = [options["slm"], *sorted({layer["source"] for layer in layers if layer.get("source_kind") == "hub"})]
    front = ["---", "library_name: pifi", f"license: {licences[0] if len(licences) == 1 else 'other'}",
             f"pipeline_tag: {_PIPELINE_TAGS.get(family.name, 'other')}", "base_model:", *[f"- {b}" for b in bases],
             "tags:", "- pifi", "---", ""]
    final = (metrics or {}).get("final") or {}
    labels = (record.get("model") or {}).get("labels") or record.get("labels") or []
    lines = [f"# PiFi ({family.summary}): {task}, {options['slm']} + {len(layers) or 'no'} frozen LLM layer(s)", "",
             "Trained with [pifi](https://arxiv.org/abs/2506.07424) (`pifi train`). This repo holds only the trainable",
             "part (SLM, L_in, L_out, head); the frozen layer goes by reference and is checked by its sha256.", "",
             "| | |", "|---|---|", f"| family | {family.name} |", f"| task | {task} |",
             f"| method | {options.get('method')} |", f"| SLM | {options['slm']} |"]
    if labels:
        lines.append(f"| labels | {', '.join(map(str, labels))} |")
    for i, layer in enumerate(layers):
        lines += [f"| layer {i} source | {layer['source']} ({layer['source_kind']}) |",
                  f"| layer {i} commit | {layer.get('commit') or '-'} |",
                  f"| layer {i} index | {layer['layer_index']} (dtype {layer['dtype']}) |",
                  f"| layer {i} sha256 | `{layer['sha256']}` |", f"| layer {i} licence | {layer.get('license') or 'unknown'} |"]
    headline = family.metrics.headline
    for split in ("validation", "test"):
        if final.get(split):
            values = " / ".join(m.show(final[split][m.key]) for m in headline if final[split].get(m.key) is not None)
            lines.append(f"| {split} {' / '.join(m.label for m in headline)} | {values} |")
    cli_args, python_text = _USAGE.get(family.name, _USAGE["classification"])
    lines += ["", "## Use", "", "```bash", f"pifi predict --run-dir hf://{repo_id} {cli_args}", "```", ""]
    if python_text:
        lines += ["```python", "from pifi_train import load_classifier", f'classify = load_classifier("hf://{repo_id}")',
                  f'print(classify(["{python_text}"]))', "```", ""]
    lines += ["## Reproduce", "", "```bash", reproduce_command(options, layers), "```", ""]
    if any(layer.get("license") for layer in layers):
        lines += ["The frozen layer is a derivative of its source model's weights; that model's licence applies.", ""]
    return "\n".join(front + lines)


def push_run(run_dir: str | Path, to: str, *, private: bool = True, token: str | None = None,
             with_layer: bool = False) -> PushedRun:
    """Upload a finished run (one seed) to the model repo ``to`` (created private by default)."""
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    run_dir = Path(run_dir)
    if (run_dir / run_files.SWEEP).is_file():
        raise ConfigError(f"{run_dir} holds several seeds", "push one of its seed-<s> run directories")
    if "/" not in to:
        raise ConfigError(f"--to {to!r} is not a Hub repo id", "use ORG/REPO")
    record = run_files.read_json(run_dir / run_files.CONFIG)
    if not record.get(run_files.RUN_MARKER):
        raise ConfigError(f"{run_dir} is not a pifi run directory")
    weights = run_dir / run_files.CHECKPOINT_DIR / run_files.WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"{run_dir} has no checkpoint yet", "push a run that finished an epoch")
    metrics = run_files.read_json(run_dir / run_files.METRICS) if (run_dir / run_files.METRICS).is_file() else None
    layers = _layer_sources(record)
    files = {run_files.CONFIG: run_dir / run_files.CONFIG}
    if metrics is not None:
        files[run_files.METRICS] = run_dir / run_files.METRICS
    for path in sorted((run_dir / run_files.CHECKPOINT_DIR).iterdir()):
        if path.is_file():
            files[f"{run_files.CHECKPOINT_DIR}/{path.name}"] = path
    if with_layer:
        for layer in layers:
            layer["repo_path"] = f"{LAYERS_DIR}/{layer['sha256'][:16]}-{Path(layer['local_path']).name}"
            files[layer["repo_path"]] = Path(layer["local_path"])
    share = {"pifi_share": 1, "layers": [{k: v for k, v in layer.items() if k != "local_path"} for layer in layers]}
    card = run_card(to, record, metrics, layers)
    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in files.items()]
    ops += [CommitOperationAdd(path_in_repo=SHARE_FILE, path_or_fileobj=json.dumps(share, indent=2).encode()),
            CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode())]
    from layer_cache.hub_share import _write_errors

    api = HfApi(endpoint=constants.ENDPOINT, token=token)
    with _write_errors(to):
        api.create_repo(to, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(to, ops, commit_message=f"pifi: push run {run_dir.name}")
    return PushedRun(to, getattr(info, "oid", None), [*files, SHARE_FILE, "README.md"], card)


def parse_hub_run(reference: str) -> tuple[str, str | None]:
    match = _HF_RUN.match(reference)
    if not match:
        raise ConfigError(f"--run-dir {reference!r} is not hf://ORG/REPO[@REV]")
    return match["repo"], match["rev"]


def pull_run(reference: str, *, token: str | bool | None = None, cache_dir: str | Path | None = None
             ) -> tuple[Path, list[str]]:
    """(local run directory, one artifact path per layer) of ``hf://ORG/REPO[@REV]``; downloads once."""
    from huggingface_hub import snapshot_download

    from pifi_extract.hub_source import hub_errors

    repo_id, revision = parse_hub_run(reference)
    with hub_errors(repo_id, revision):
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(RUN_FILES), token=token))
    share_path = folder / SHARE_FILE
    layers = json.loads(share_path.read_text())["layers"] if share_path.is_file() else []
    return folder, [_find_layer(layer, repo_id, folder.name, token, cache_dir) for layer in layers]


def _find_layer(layer: dict[str, Any], repo_id: str, repo_commit: str, token: str | bool | None,
                cache_dir: str | Path | None) -> str:
    """The pifi cache, else the same repo's copy, else the source model by range reads (then cached)."""
    from layer_cache import LayerCache, get_or_extract
    from layer_cache.layout import CacheKey
    from pifi_extract.artifact import read_artifact

    hub_source = layer.get("source_kind") == "hub" and layer.get("commit")
    if hub_source:
        key = CacheKey(layer["source"], "hub", layer["commit"], int(layer["layer_index"]), layer.get("dtype", "keep"))
        path = LayerCache(cache_dir).path_of(key)
        if path.is_file() and read_artifact(path).data_sha256 == layer["sha256"]:
            return str(path)
    if layer.get("repo_path"):
        from huggingface_hub import hf_hub_download

        from pifi_extract.hub_source import hub_errors

        with hub_errors(repo_id, repo_commit, layer["repo_path"]):
            return hf_hub_download(repo_id, layer["repo_path"], revision=repo_commit, token=token)
    if hub_source:
        return str(get_or_extract(layer["source"], int(layer["layer_index"]), revision=layer["commit"],
                                  dtype=layer.get("dtype", "keep"), token=token, cache_dir=cache_dir).path)
    raise ArtifactError(f"the layer of {repo_id} comes from a local model ({layer.get('source')}) and was not pushed",
                        "push the run again with --with-layer, or pass --layer-artifact")
