"""``pifi cost``: what the plugged layer costs at inference, for a finished run or a configuration (the paper's
Tables 16 and 20), in every family.

Each arm (the base SLM, and the run's or the configuration's PiFi model) is built on the meta device from configs
alone — the SLM's ``config.json`` or a config pifi knows (:mod:`pifi_train.known_configs`), the layer's from its
artifact header or the LLM's config — and one forward pass over ``batch_size`` × ``seq_len`` tokens is counted
(:mod:`pifi_train.cost_count`): parameters per module, FLOPs, the paper's fvcore-style multiply-adds, weights and
an estimated peak of memory. Nothing is downloaded and no weight is read. Latency (ms per example) and, on CUDA,
the measured peak memory come from timing the same forward with real tensors: a run's own model, a configuration
whose SLM folder holds weights and whose layers are artifacts, or any configuration with ``random_weights``
(random values of the same shapes: the same time). Seq2seq counts one teacher-forced forward (the encoder once,
the decoder over ``target_len`` tokens): the linear layers' FLOPs of greedy generation of that many tokens with a
KV cache; beam search multiplies the decoder's part by the number of beams.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pifi_extract.errors import ConfigError

from .families import Family, get_family
from .cost_spec import CostOptions, CostTarget, LayerSource
from .known_configs import require_config

if TYPE_CHECKING:
    from .cost_count import ForwardCount


@dataclass
class ArmCost:
    arm: str
    count: ForwardCount
    latency_ms: float | None = None  # per example, median over the timed forwards
    measured_peak_bytes: int | None = None  # CUDA: torch.cuda.max_memory_allocated while timing
    timed_with: str | None = None  # "the run's weights", "the given weights (a random head)", "random weights"


@dataclass
class CostReport:
    family: str
    slm: str
    layers: list[str]
    batch_size: int
    seq_len: int
    target_len: int | None
    dtype: str
    arms: list[ArmCost]
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        from dataclasses import asdict

        return json.dumps(asdict(self), indent=2)


def _slm_config(name: str, family: Family) -> tuple[Any, str | None]:
    """The SLM's config (a local folder or config.json, else a known model) and its weights folder if any."""
    from transformers import AutoConfig

    path = Path(name).expanduser()
    weights = None
    if path.is_dir() or path.suffix == ".json":
        from .slm import load_config

        config = load_config(str(path)) if path.is_dir() else _config_file(path)
        weights = str(path) if path.is_dir() and any(path.glob("*.safetensors")) else None
    else:
        _, values = require_config(name, "--slm")
        config = AutoConfig.for_model(values.pop("model_type"), **values)
    if bool(getattr(config, "is_encoder_decoder", False)) != (family.name == "seq2seq"):
        raise ConfigError(f"--slm {name} is {'an' if config.is_encoder_decoder else 'not an'} encoder-decoder model, "
                          f"and this is a {family.name} configuration",
                          "seq2seq takes T5/BART-like SLMs (--task-type seq2seq), the other families encoders or "
                          "decoders")
    return config, weights


def _config_file(path: Path) -> Any:
    from transformers import AutoConfig

    from . import run_files

    values = run_files.read_json(path)
    if not isinstance(values, dict) or not isinstance(values.get("model_type"), str):
        raise ConfigError(f"{path} is not a model's config.json (no model_type)")
    values = dict(values)
    return AutoConfig.for_model(values.pop("model_type"), **values)


def _llm_config(name: str) -> dict[str, Any]:
    path = Path(name).expanduser()
    if path.is_dir() or path.suffix == ".json":
        from . import run_files

        values = run_files.read_json(path / "config.json" if path.is_dir() else path)
        if not isinstance(values, dict):
            raise ConfigError(f"--llm {name}: its config.json is not an object")
        return values
    return require_config(name, "--llm")[1]


def target_from_config(slm: str, *, llm: str | None = None, layers: Sequence[int] = (-1,),
                       layer_artifacts: Sequence[str] = (), task_type: str = "classification",
                       plug: str | None = None, post_norm: bool = False, num_labels: int = 2,
                       max_length: int | None = None, max_target_length: int | None = None) -> CostTarget:
    """A configuration: ``slm`` with the layers of ``llm`` (by index) or of artifacts (none: the base arm only)."""
    from .config import TrainConfig
    from .families.classification.model import resolve_pooling

    family = get_family(task_type)
    config = TrainConfig(task_type=family.name, plug=plug, max_length=max_length, method="pifi", post_norm=post_norm,
                         **({"max_target_length": max_target_length} if max_target_length else {}))
    slm_config, weights = _slm_config(slm, family)
    sources = []
    if layer_artifacts:
        from pifi_extract.artifact import read_artifact

        from .layer_ref import describe_artifact

        for reference in layer_artifacts:
            identity = describe_artifact(reference, verify=False)
            info = read_artifact(identity.path)
            sources.append(LayerSource(info.config, info.layer_index, identity.source or reference, identity.path))
    elif llm is not None:
        values = _llm_config(llm)
        sources = [LayerSource(values, index, f"{llm}#{index}") for index in layers]
    if num_labels < 2:
        raise ConfigError(f"--num-labels must be at least 2, got {num_labels}")
    spec = {"classification": {"labels": [str(i) for i in range(num_labels)], "text_pairs": False,
                               "pooling": resolve_pooling(slm_config, "auto")},
            "qa": {"v2": False}, "seq2seq": {"source_prefix": ""}}[family.name]
    options = family.model_options(config)
    return CostTarget(family, slm, slm_config, sources, options, spec, family.max_length(config),
                      config.max_target_length, weights)


def target_from_run(run_dir: str | Path, token: str | bool | None = None) -> CostTarget:
    """A finished run: its SLM's config (checkpoint/), its layers' configs (artifact headers), its wiring."""
    from pifi_extract.artifact import read_artifact

    from . import run_files
    from .run_record import layers_for, open_run

    opened = open_run(run_dir, token)
    options = opened.options
    if options.method == "llm":
        raise ConfigError(f"{opened.run_dir}: pifi cost does not count --method llm runs (no SLM) yet",
                          "count its layer with --slm and --layer-artifact, or the base SLM alone")
    runtime = opened.family.runtime()
    slm_config = runtime.load_slm_config(str(opened.run_dir / run_files.CHECKPOINT_DIR))
    sources = []
    if options.method == "pifi":
        for identity in layers_for(opened.record, opened.layer_artifact):
            info = read_artifact(identity.path)
            sources.append(LayerSource(info.config, info.layer_index, identity.source or identity.reference,
                                       identity.path))
    lora = (options.lora_r, options.lora_alpha, options.lora_dropout, options.lora_targets) \
        if options.method == "lora" else None
    return CostTarget(opened.family, str(options.slm), slm_config, sources, opened.family.model_options(options),
                      opened.spec, opened.family.max_length(options), options.max_target_length, run=opened, lora=lora)


def _check_length(target: CostTarget, options: CostOptions) -> None:
    """Refuse more tokens than the SLM has positions for (BERT: 512), in one line."""
    limit = getattr(target.slm_config, "max_position_embeddings", None)
    lengths = {"--seq-len": options.seq_len or target.max_length}
    if target.family.name == "seq2seq":
        lengths["--target-len"] = options.target_len or target.target_len
    for flag, length in lengths.items():
        if isinstance(limit, int) and length > limit:
            raise ConfigError(f"{flag} {length}: the SLM has {limit} positions", f"pass {flag} {limit} or less")


def measure(target: CostTarget, options: CostOptions | None = None) -> CostReport:
    """Count every arm on the meta device, and time it where real tensors can be had (torch is imported here)."""
    from .cost_build import count_arm, time_arm
    from .distributed import resolve_device

    options = options or CostOptions()
    options.check()
    _check_length(target, options)
    device = resolve_device(options.device)
    arms = []
    for arm in target.arms:
        cost = ArmCost(arm, count_arm(target, arm, options))
        timed = time_arm(target, arm, options, device)
        if timed is not None:
            cost.latency_ms, cost.measured_peak_bytes, cost.timed_with = timed
        arms.append(cost)
    untimed = [a.arm for a in arms if a.timed_with is None]
    notes = [f"{' and '.join(untimed)}: no weights at hand, counted only (--random-weights times random values of "
             "the same shapes)"] if untimed else []
    return CostReport(target.family.name, target.slm, [s.name for s in target.layers], options.batch_size,
                      options.seq_len or target.max_length,
                      (options.target_len or target.target_len) if target.family.name == "seq2seq" else None,
                      options.dtype, arms, str(device), notes)
