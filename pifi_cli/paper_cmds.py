"""`pifi paper [N]`: list the paper's tables and figures, print one's commands, run its grid, render it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import CacheDirOpt, QuietOpt, StepProgress, TokenOpt, say, warn


def _key_values(pairs: list[str], flag: str) -> dict[str, str]:
    from pifi_extract.errors import ConfigError

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r} is not KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def paper(
    table: Annotated[Optional[str], typer.Argument(help="Table 1..20, or fig2 / fig3; none: list them all with what they need.")] = None,
    run: Annotated[bool, typer.Option("--run", help="Extract the layers, run every seed not finished yet (finished ones are skipped, interrupted ones continue), then render the table.")] = False,
    report_only: Annotated[bool, typer.Option("--report", help="Render the table from the runs already finished in --output-dir (trains nothing).")] = False,
    scale: Annotated[str, typer.Option("--scale", help="paper (the recipe) or smoke (8 examples, 1 epoch, 2 seeds per run: the whole grid in minutes; says nothing about the paper).")] = "paper",
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", help="Where the runs go (default runs/paper, smoke: runs/paper-smoke); one folder per SLM/task/arm, shared by the tables that share a run.")] = None,
    stand_in: Annotated[Optional[list[str]], typer.Option("--stand-in", help="NAME=PATH: a local model folder or data folder (train/validation/test files) for a paper name (BERT-base, Llama-3.1-8B, SST-2), its Hub id or task name, or a kind (encoder, decoder, seq2seq, llm, classification, pair, qa, generation). Repeatable.")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Seeds per run (default: the paper's 5; smoke: 2).")] = None,
    launcher: Annotated[str, typer.Option("--launcher", help="serial (here), local (one process per visible GPU, or --workers on CPU) or slurm (one Slurm job per seed; pifi[slurm]).")] = "serial",
    workers: Annotated[Optional[int], typer.Option("--workers", help="--launcher local: worker processes (default: one per visible GPU, 1 on CPU).")] = None,
    slurm_partition: Annotated[Optional[str], typer.Option("--slurm-partition", help="Slurm partition.")] = None,
    slurm_time: Annotated[int, typer.Option("--slurm-time", help="Slurm time limit per job, minutes.")] = 24 * 60,
    slurm_gpus: Annotated[int, typer.Option("--slurm-gpus", help="GPUs per Slurm job.")] = 1,
    slurm_cpus: Annotated[int, typer.Option("--slurm-cpus", help="CPUs per Slurm job.")] = 8,
    slurm_mem: Annotated[Optional[int], typer.Option("--slurm-mem", help="Memory per Slurm job, GB.")] = None,
    slurm_param: Annotated[Optional[list[str]], typer.Option("--slurm-param", help="KEY=VALUE: another sbatch setting, e.g. account=abc or qos=high (repeatable).")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="--launcher slurm: wait for the jobs and render (default: submit and return).")] = False,
    output_format: Annotated[str, typer.Option("--format", help="md or csv.")] = "md",
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Reproduce the PiFi paper: every table and figure as a grid of runs, printed as commands, run, and rendered beside the paper's numbers."""
    from pifi_extract.errors import ConfigError
    from pifi_train.paper import (TABLES, SlurmOptions, commands, default_output_dir, get_table, grid, render,
                                  run_grid, status, table_keys)
    from pifi_train.paper.reproduce import describe

    stand_ins = list(stand_in or [])
    if table is None:
        if run or report_only:
            raise ConfigError("--run and --report need a table", "e.g. pifi paper 5 --run")
        for key in table_keys():
            runs = grid(TABLES[key], scale, stand_ins, output_dir, seeds)
            for line in describe(TABLES[key], runs, status(TABLES[key], runs)):
                say(line)
        return
    spec = get_table(table)
    out = output_dir or default_output_dir(scale)
    runs = grid(spec, scale, stand_ins, out, seeds)
    if not (run or report_only):
        state = status(spec, runs)
        say(f"# {spec.name} ({spec.where}): {spec.title}")
        if spec.note:
            say(f"# {spec.note}")
        for need in state.missing:
            say(f"# needs {need}")
        for line in commands(spec, runs, out):
            say(line)
        return
    if run:
        from .train_cmds import TrainProgress

        slurm = SlurmOptions(slurm_partition, slurm_time, slurm_gpus, slurm_cpus, slurm_mem,
                             _key_values(list(slurm_param or []), "--slurm-param"), wait=wait)
        with StepProgress(quiet, f"{spec.name}") as progress, TrainProgress(quiet or launcher != "serial") as trained:
            outcome = run_grid(spec, runs, launcher=launcher, workers=workers, slurm=slurm,
                               cache_dir=str(cache_dir) if cache_dir else None, token=token, progress=progress,
                               train_progress=trained)
        counts = ", ".join(f"{outcome.count(s)} {s}" for s in ("trained", "resumed", "skipped", "busy", "submitted",
                                                               "failed") if outcome.count(s))
        say(f"{spec.name}: {counts or 'nothing to run'}")
        for result in outcome.failed:
            warn(f"{result.name}: {result.error}")
        if outcome.count("submitted"):
            first = next(r for r in outcome.results if r.status == "submitted")
            say(f"submitted as Slurm jobs ({first.error}, ...); logs in {out / 'slurm'}; when they are done: "
                f"pifi paper {spec.key} --report --output-dir {out}")
            return
    rendering = render(spec, runs, scale=scale, stand_ins=stand_ins)
    typer.echo(rendering.text(output_format))
    if run and outcome.failed:
        first = outcome.failed[0]
        raise ConfigError(f"{len(outcome.failed)} seed(s) of {spec.name} failed, first {first.name}: {first.error}",
                          "fix it and run the same command again: finished seeds are kept")


def register(app: typer.Typer) -> None:
    app.command()(paper)
