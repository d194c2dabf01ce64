"""`pifi cost`: parameters per module, inference FLOPs, memory and latency of a run or a configuration, base vs PiFi."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from pifi_train.cost_spec import CostOptions

from .common import JsonOpt, dataclass_from_options, field_default, say
from .report_cmds import wide_console

C = lambda name: field_default(CostOptions, name)  # noqa: E731


def cost(
    run_dir: Annotated[Optional[str], typer.Argument(help="A finished run (one seed; or hf://ORG/REPO). Or describe a configuration with --slm.")] = None,
    slm: Annotated[Optional[str], typer.Option("--slm", help="SLM: a local folder or config.json, or a model pifi knows the config of (bert-base-uncased, bert-large-uncased, roberta-base, t5-base, bart-base, ...).")] = None,
    llm: Annotated[Optional[str], typer.Option("--llm", help="LLM whose layer is plugged, by config only: a folder, a config.json, or a known name (Llama-3.1-8B, Llama-3.1-70B, Mistral-7B-v0.3, Qwen2-7B, gemma-2-9b, falcon-7b, ...).")] = None,
    layer: Annotated[Optional[list[int]], typer.Option("--layer", help="Layer index of --llm (negative from the end; repeat to stack). Default: -1.")] = None,
    layer_artifact: Annotated[Optional[list[str]], typer.Option("--layer-artifact", help="Or a layer artifact / cache key (its header's config; its weights for timing). Repeatable.")] = None,
    task_type: Annotated[Optional[str], typer.Option("--task-type", help="classification (default), qa or seq2seq.")] = None,
    plug: Annotated[Optional[str], typer.Option("--plug", help="cls or sequence (default: the family's).")] = None,
    post_norm: Annotated[bool, typer.Option("--post-norm", help="The LLM's final norm after the layer.")] = False,
    num_labels: Annotated[Optional[int], typer.Option("--num-labels", help="Classes of the classification head (default 2).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Inputs per forward (the paper's Table 16: 32).")] = C("batch_size"),
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", help="Tokens per input (default: the run's max length, else the family's: 100, QA 384).")] = C("seq_len"),
    target_len: Annotated[Optional[int], typer.Option("--target-len", help="Seq2seq: decoder tokens of the counted teacher-forced forward (default: max target length, 100).")] = C("target_len"),
    dtype: Annotated[str, typer.Option("--dtype", help="float32, bfloat16 or float16 (weights, memory, timing).")] = C("dtype"),
    device: Annotated[str, typer.Option("--device", help="Where to time: cpu, cuda, cuda:N or auto.")] = C("device"),
    repeats: Annotated[int, typer.Option("--repeats", help="Timed forwards after 2 warm-up ones (median).")] = C("repeats"),
    random_weights: Annotated[bool, typer.Option("--random-weights", help="Time a configuration without weights on random values of the same shapes.")] = C("random_weights"),
    as_json: JsonOpt = False,
) -> None:
    """What the plugged layer costs at inference (the paper's Tables 16 and 20): parameters per module, FLOPs, memory and latency, base vs PiFi; counted on the meta device, nothing downloaded."""
    from pifi_extract.errors import ConfigError
    from pifi_train.cost import measure, target_from_config, target_from_run

    config_options = {"llm": llm, "layer": layer, "layer_artifact": layer_artifact, "task_type": task_type,
                      "plug": plug, "num_labels": num_labels}
    if (run_dir is None) == (slm is None):
        raise ConfigError("pifi cost takes a run directory or --slm (a configuration), not both",
                          "e.g. pifi cost runs/sst2-pifi/seed-2023, or pifi cost --slm bert-base-uncased --llm Llama-3.1-8B")
    if run_dir is not None:
        given = [f"--{k.replace('_', '-')}" for k, v in {**config_options, "post_norm": post_norm}.items() if v]
        if given:
            raise ConfigError(f"{', '.join(given)} describe a configuration; a run brings its own",
                              "drop them, or drop the run directory and pass --slm")
        target = target_from_run(run_dir)
    else:
        if llm is not None and layer_artifact:
            raise ConfigError("--llm and --layer-artifact both name the layer", "pass one of them")
        kwargs: dict[str, Any] = {k: v for k, v in {"llm": llm, "layer_artifacts": layer_artifact,
                                                    "task_type": task_type, "plug": plug, "num_labels": num_labels,
                                                    "layers": layer}.items() if v}
        target = target_from_config(slm, post_norm=post_norm, **kwargs)
    report = measure(target, dataclass_from_options(CostOptions, locals()))
    if as_json:
        typer.echo(report.to_json())
        return
    _print(report)


def _millions(n: int) -> str:
    return "-" if not n else f"{n / 1e6:.3f}" if n >= 1000 else f"{n / 1e6:.2g}"


def _g(n: int) -> str:
    return f"{n / 1e9:.2f}" if n >= 1e10 else f"{n / 1e9:.4g}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f}" if n >= 1e7 else f"{n / 1e6:.3g}"


def _relative(value: float, base: float) -> str:
    return f"{100 * (value / base - 1):+.2f} %" if base else ""


def _print(report: Any) -> None:
    from rich.table import Table

    length = f"{report.batch_size} × {report.seq_len} tokens"
    if report.target_len is not None:
        length += f" → {report.target_len} target tokens (teacher-forced)"
    what = " + ".join([report.slm.rstrip("/").rsplit("/", 1)[-1], *report.layers])
    table = Table(title=f"pifi cost, {report.family}: {what}; one forward of {length}, {report.dtype}",
                  title_justify="left")
    header = ["arm", "SLM (M)", "L_in (M)", "layer (M)", "L_out (M)", "head (M)", "GFLOPs", "vs base",
              "GMACs (paper)", "vs base", "weights (MB)", "peak (MB, est.)", "ms / example"]
    cuda = any(a.measured_peak_bytes is not None for a in report.arms)
    header += ["peak (MB, CUDA)"] if cuda else []
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    base = report.arms[0].count
    for arm in report.arms:
        c = arm.count
        row = [arm.arm, *[_millions(c.parameters[k]) for k in ("slm", "l_in", "layer", "l_out", "head")],
               _g(c.flops), _relative(c.flops, base.flops) if arm is not report.arms[0] else "",
               _g(c.paper_macs), _relative(c.paper_macs, base.paper_macs) if arm is not report.arms[0] else "",
               _mb(c.weight_bytes), _mb(c.peak_bytes),
               f"{arm.latency_ms:.3f}" if arm.latency_ms is not None else "-"]
        row += [_mb(arm.measured_peak_bytes) if arm.measured_peak_bytes is not None else "-"] if cuda else []
        table.add_row(*row)
    wide_console().print(table)
    say("GFLOPs: torch.utils.flop_counter, 2 per multiply-add, attention included; GMACs (paper): fvcore's count, "
        "1 per multiply-add of the linear layers + 5 per LayerNorm element, no attention (the paper's Table 16 unit)")
    timed = sorted({a.timed_with for a in report.arms if a.timed_with})
    if timed:
        say(f"timed on {report.device} with {', '.join(timed)}")
    for note in report.notes:
        say(f"note: {note}")


def register(app: typer.Typer) -> None:
    app.command()(cost)
