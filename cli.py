"""The `pifi` command line: parses options and calls the library, nothing more.

Every :class:`~pifi_extract.errors.PifiError` becomes one line on stderr and exit
code 2; set ``PIFI_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from pifi_extract.errors import PifiError

app = typer.Typer(
    name="pifi",
    help="PiFi made practical: extract one LLM layer, cache and share it, plug it into a small LM and fine-tune.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _show_version(value: bool) -> None:
    if value:
        from pifi_extract import __version__

        typer.echo(f"pifi {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """PiFi made practical: extract one LLM layer, cache and share it, plug it into a small LM and fine-tune."""


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: run the app, turning pifi errors into one line and exit code 2."""
    debug = os.environ.get("PIFI_DEBUG", "") not in ("", "0")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill`/job schedulers: clean up temp files like Ctrl-C does
    try:
        rc = app(args=argv, prog_name="pifi", standalone_mode=False)  # typer.Exit(n) comes back as n here
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except PifiError as err:
        if debug:
            raise
        _fail(err.one_line())
        sys.exit(2)
    except KeyboardInterrupt:
        if debug:
            raise
        _fail("interrupted; nothing partial was left behind")
        sys.exit(130)
    except _click_errors("ClickException") as err:  # usage errors: click's own message (and help), exit 2
        err.show()
        sys.exit(err.exit_code)
    except _click_errors("Abort"):
        sys.exit(130)


def _click_errors(name: str) -> tuple[type[BaseException], ...]:
    """Click's exception class ``name``: typer >= 0.20 raises its bundled copy's, older ones click's own."""
    modules = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(module))
        except ImportError:
            pass
    return tuple(getattr(m, name) for m in modules if hasattr(m, name))


# ---- commands are registered below (one section per capability) ----


# ---- extract / inspect -----------------------------------------------------------------------

CACHE_DIR_HELP = "pifi cache folder (default: $PIFI_CACHE, else $XDG_CACHE_HOME/pifi or ~/.cache/pifi)."


@app.command()
def extract(
    llm: str = typer.Option(..., "--llm", help="Hub repo id (org/name), a local folder with config.json + *.safetensors, or a local .gguf file."),
    layer: list[int] = typer.Option(..., "--layer", help="Layer index; negative counts from the end (-1 = last). Repeat for several layers: one artifact each."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit sha (default: main)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also place the artifact here: a file (one layer) or folder (several layers)."),
    dtype: str = typer.Option("keep", "--dtype", help="keep | bf16 | fp16 | fp32 (floating tensors only)."),
    token: Optional[str] = typer.Option(None, "--token", help="Hub token (default: HF_TOKEN or the `hf auth login` token)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help="Bypass the cache: write only the --output file(s)."),
    gguf_file: Optional[str] = typer.Option(None, "--gguf-file", help="Read this .gguf file of the --llm repo or folder (dequantized; cached as ORG/REPO/FILE.gguf)."),
) -> None:
    """Read ONE decoder layer of an LLM (only its bytes) into a small standalone artifact, kept in the pifi cache."""
    from pifi_extract.artifact import read_artifact
    from pifi_extract.extract import extract_layers

    if dtype not in ("keep", "bf16", "fp16", "fp32"):
        raise typer.BadParameter("choose keep, bf16, fp16 or fp32", param_hint="--dtype")
    several = len(layer) > 1
    if no_cache:
        with _progress(quiet, "extracting") as progress:
            results = extract_layers(
                llm,
                layer,
                lambda plan: _output_path(output, gguf_file or llm, plan.layer_index, dtype, several=several),
                revision=revision,
                token=token,
                dtype=dtype,
                progress=progress,
                gguf_file=gguf_file,
            )
        for result in results:
            _print_summary(result.path, result.info)
        return
    from layer_cache import get_or_extract_layers, place_copy

    def waiting() -> None:
        console.print("another process is extracting this layer into the cache; waiting for it…", highlight=False)

    with _progress(quiet, "extracting") as progress:
        artifacts = get_or_extract_layers(
            llm,
            layer,
            revision=revision,
            dtype=dtype,
            token=token,
            cache_dir=cache_dir,
            progress=progress,
            on_wait=waiting,
            gguf_file=gguf_file,
        )
    for art in artifacts:
        path = art.path
        if output is not None:
            path = place_copy(art.path, _output_path(output, gguf_file or llm, art.key.layer_index, dtype, several=several))
        _print_summary(path, read_artifact(path))
        state = "from the cache" if art.hit else "stored in the cache"
        Console().print(f"{state}: {art.reference}", highlight=False, soft_wrap=True)


@app.command()
def inspect(
    artifact: str = typer.Argument(..., help="Artifact: a file, a cache key (org/name:-1, org/name@rev:-1) or hf://ORG/REPO/path."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """Show an artifact's provenance, config and tensors."""
    from layer_cache import artifact_path
    from pifi_extract.artifact import read_artifact
    from pifi_extract.inspect import describe

    info = read_artifact(artifact_path(artifact, cache_dir=cache_dir))
    if as_json:
        import json

        typer.echo(json.dumps(describe(info), indent=2, sort_keys=True))
        return
    _print_inspect(info)


def _output_path(output: Optional[Path], llm: str, index: int, dtype: str, *, several: bool) -> Path:
    name = f"{Path(llm.rstrip('/')).name.removesuffix('.gguf')}-layer-{index}" + ("" if dtype == "keep" else f".{dtype}") + ".safetensors"
    if output is None:
        return Path.cwd() / name
    if several or output.is_dir():
        return output / name
    return output


def _print_summary(path: Path, info: "object") -> None:
    from pifi_extract.inspect import summary_line

    out = Console()
    out.print(str(path), highlight=False, soft_wrap=True)
    out.print(summary_line(info), highlight=False, soft_wrap=True)


def _print_inspect(info: "object") -> None:
    from rich.table import Table

    from pifi_extract.inspect import describe

    data = describe(info)
    out = Console()
    out.print(f"[bold]{data['path']}[/]", highlight=False)
    table = Table(show_header=False, box=None)
    for key, value in data["summary"].items():
        table.add_row(f"[cyan]{key}[/]", str(value))
    out.print(table)
    tensors = Table(title="tensors", title_justify="left")
    for col in ("name", "dtype", "shape"):
        tensors.add_column(col)
    for name, (dt, shape) in data["tensors"].items():
        tensors.add_row(name, dt, "×".join(map(str, shape)) or "scalar")
    out.print(tensors)
    out.print("[bold]config[/] (complete config.json of the source model; --json prints it)")
    keys = data["layer_config"]
    out.print(", ".join(f"{k}={v}" for k, v in keys.items()), highlight=False, soft_wrap=True)


class _progress:
    """A rich byte progress bar on a terminal; nothing when quiet or not a TTY. Yields a library callback."""

    def __init__(self, quiet: bool, description: str) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.description = description
        self._bar = None
        self._task = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=console, transient=True,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task(self.description, total=None)
        bar, task = self._bar, self._task

        def callback(advance: int, total: int) -> None:
            bar.update(task, advance=advance, total=total)

        return callback

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


# ---- cache -------------------------------------------------------------------------------------

cache_app = typer.Typer(
    help="The pifi layer cache ($PIFI_CACHE, else ~/.cache/pifi): list, verify, remove, prune, share via the Hub.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")
KEYS_HELP = "Artifact references: cache keys (org/name:-1, org/name@rev:31:bf16), files in the cache, hf:// paths."


@cache_app.command("ls")
def cache_ls(
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """List cached artifacts and their total size."""
    from layer_cache import LayerCache

    cache = LayerCache(cache_dir)
    entries = cache.entries()
    total = sum(e.size for e in entries)
    if as_json:
        import json

        typer.echo(json.dumps({"root": str(cache.root), "total_bytes": total, "artifacts": [e.to_json() for e in entries]}, indent=2))
        return
    _print_cache_table(entries, cache.root, total)


@cache_app.command("verify")
def cache_verify(
    keys: Optional[list[str]] = typer.Argument(None, help=KEYS_HELP + " Default: every artifact."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """Recompute each artifact's data sha256: OK or CORRUPT; exit code 1 if any is corrupt."""
    from layer_cache import resolve_key, verify

    chosen = [resolve_key(k, cache_dir=cache_dir) for k in keys] if keys else None
    results = verify(chosen, cache_dir=cache_dir)
    out = Console()
    for r in results:
        status = "[green]OK[/]" if r.ok else "[bold red]CORRUPT[/]"
        out.print(f"{status}  {r.key.display()}" + (f"  ({r.error})" if r.error else ""), highlight=False, soft_wrap=True)
    bad = [r for r in results if not r.ok]
    if bad:
        _fail(f"{len(bad)} of {len(results)} artifacts are corrupt; remove them with `pifi cache rm KEY` and extract again")
        sys.exit(1)  # (typer.Exit's code is lost under standalone_mode=False)
    if not results:
        out.print("the cache is empty")


@cache_app.command("rm")
def cache_rm(
    keys: list[str] = typer.Argument(..., help=KEYS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """Remove artifacts from the cache (all references are checked before anything is removed)."""
    from layer_cache import LayerCache, resolve_key

    chosen = [resolve_key(k, cache_dir=cache_dir) for k in keys]
    cache = LayerCache(cache_dir)
    for key in dict.fromkeys(chosen):
        cache.remove(key)
        Console().print(f"removed {key.display()}", highlight=False, soft_wrap=True)


@cache_app.command("prune")
def cache_prune(
    older_than: Optional[str] = typer.Option(None, "--older-than", help="Remove artifacts unused for this long (30d, 12h)."),
    max_size: Optional[str] = typer.Option(None, "--max-size", help="Then remove the least recently used until the cache fits (20GB)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be removed."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """Remove unused artifacts; always sweeps what crashed extractions left behind."""
    from layer_cache import prune
    from pifi_extract.inspect import human_bytes

    result = prune(older_than=older_than, max_size=max_size, dry_run=dry_run, cache_dir=cache_dir)
    out = Console()
    verb = "would remove" if dry_run else "removed"
    for e in result.removed:
        out.print(f"{verb} {e.reference} ({human_bytes(e.size)})", highlight=False, soft_wrap=True)
    out.print(f"{verb} {len(result.removed)} artifacts, {human_bytes(result.freed_bytes)}; {human_bytes(result.kept_bytes)} kept")


@cache_app.command("push")
def cache_push(
    keys: list[str] = typer.Argument(..., help=KEYS_HELP),
    to: str = typer.Option(..., "--to", help="Hub model repo ORG/REPO (created if missing)."),
    private: bool = typer.Option(True, "--private/--public", help="Visibility of a repo created by this push."),
    token: Optional[str] = typer.Option(None, "--token", help="Hub token with write access (default: HF_TOKEN or the saved login)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """Upload artifacts to a Hub model repo, with a generated model card."""
    from layer_cache import push
    from layer_cache.card import train_command

    result = push(keys, to, private=private, token=token, cache_dir=cache_dir)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    out = Console()
    for path in result.paths:
        out.print(f"pushed hf://{to}/{path}", highlight=False, soft_wrap=True)
    out.print(f"use it with: {train_command(to, result.paths[0])}", highlight=False, soft_wrap=True)


@cache_app.command("pull")
def cache_pull(
    repo: str = typer.Argument(..., help="Hub model repo ORG/REPO holding pifi artifacts."),
    paths: Optional[list[str]] = typer.Argument(None, help="Files to pull (default: every .safetensors)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit sha (default: main)."),
    token: Optional[str] = typer.Option(None, "--token", help="Hub token (default: HF_TOKEN or the saved login)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
) -> None:
    """Download artifacts from a Hub repo into the cache, verifying their hashes."""
    from layer_cache import pull

    with _progress(quiet, "pulling") as progress:
        pulled = pull(repo, paths or None, revision=revision, token=token, cache_dir=cache_dir, progress=progress)
    out = Console()
    for art in pulled:
        state = "already cached" if art.hit else "pulled"
        out.print(f"{state}: {art.reference}  {art.path}", highlight=False, soft_wrap=True)


def _print_cache_table(entries: list, root: Path, total: int) -> None:
    import time

    from rich.table import Table

    from pifi_extract.inspect import human_bytes, human_count

    table = Table(title=f"pifi cache: {root}", title_justify="left")
    for col in ("source", "commit", "layer", "dtype", "params", "size", "last used", "reference"):
        table.add_column(col, justify="right" if col in ("layer", "params", "size") else "left", overflow="fold")
    for e in entries:
        commit = e.key.commit[:12] + (f" ({', '.join(e.refs)})" if e.refs else "")
        layer = f"{e.key.layer_index}/{e.num_layers}" if e.num_layers else str(e.key.layer_index)
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        table.add_row(e.key.source, commit, layer, e.key.dtype, human_count(e.num_parameters), human_bytes(e.size), used, e.reference)
    out = Console()
    out.print(table)
    out.print(f"{len(entries)} artifacts, {human_bytes(total)} in total", highlight=False)


# ---- train / predict / report ------------------------------------------------------------------

@app.command()
def train(
    task: Optional[str] = typer.Option(None, "--task", help="Built-in task: sst2, imdb, tweet_sentiment_binary, tweet_offensive, cola, mnli, snli (needs pifi[datasets])."),
    train_file: Optional[str] = typer.Option(None, "--train-file", help="Local training data: .csv, .tsv or .jsonl."),
    validation_file: Optional[str] = typer.Option(None, "--validation-file", help="Local validation data (default: a seeded split of --train-file)."),
    test_file: Optional[str] = typer.Option(None, "--test-file", help="Local test data (evaluated with the best epoch)."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the text."),
    text_pair_column: Optional[str] = typer.Option(None, "--text-pair-column", help="Column with the second text of a pair (e.g. hypothesis)."),
    label_column: str = typer.Option("label", "--label-column", help="Column with the label (integers or names)."),
    validation_fraction: float = typer.Option(0.2, "--validation-fraction", help="Share of train held out when there is no validation file."),
    max_train_samples: Optional[int] = typer.Option(None, "--max-train-samples", help="Use only the first N training examples."),
    max_eval_samples: Optional[int] = typer.Option(None, "--max-eval-samples", help="Use only the first N validation/test examples."),
    slm: str = typer.Option("google-bert/bert-base-uncased", "--slm", help="Small LM: Hub id or local folder (BERT, RoBERTa, DeBERTa-V3, ELECTRA, MiniLM, SmolLM2...)."),
    layer_artifact: Optional[list[str]] = typer.Option(None, "--layer-artifact", help="The LLM layer: artifact file from `pifi extract`, or a cache key (org/name:-1). Repeat to plug several layers in that order (same hidden size)."),
    method: str = typer.Option("pifi", "--method", help="pifi (SLM + frozen LLM layer) or base (the SLM alone)."),
    plug: str = typer.Option("cls", "--plug", help="cls: only the pooled vector goes through the layer (the paper); sequence: every token."),
    attention: str = typer.Option("bidirectional", "--attention", help="With --plug sequence: bidirectional or causal."),
    post_norm: bool = typer.Option(False, "--post-norm/--no-post-norm", help="Apply the LLM's final norm after the layer (off in the paper)."),
    pooling: str = typer.Option("auto", "--pooling", help="auto (first token for encoders, last non-pad token for decoders), first or last."),
    dropout: float = typer.Option(0.2, "--dropout", help="Dropout of the classification head."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default 3; with --resume: extend the run to this many)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Batch size per process (last partial batch dropped)."),
    eval_batch_size: Optional[int] = typer.Option(None, "--eval-batch-size", help="Evaluation batch size (default: --batch-size)."),
    lr: float = typer.Option(5e-5, "--lr", help="Adam learning rate."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", help="Adam weight decay."),
    max_length: int = typer.Option(100, "--max-length", help="Maximum tokens per example."),
    label_smoothing: float = typer.Option(0.05, "--label-smoothing", help="Cross-entropy label smoothing."),
    grad_clip: float = typer.Option(5.0, "--grad-clip", help="Gradient-norm clipping."),
    seed: int = typer.Option(2023, "--seed", help="Seed of the first run."),
    seeds: int = typer.Option(1, "--seeds", help="Repeat with this many seeds (seed, seed+1, ...): output-dir/seed-<s>/."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: one GPU per process)."),
    precision: str = typer.Option("auto", "--precision", help="auto (CUDA: bf16, fp16 where unsupported; CPU: fp32), fp32, bf16, fp16."),
    num_workers: int = typer.Option(0, "--num-workers", help="DataLoader worker processes."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", help="Run directory (default runs/<task>-<method>-<time>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output-dir from its last finished epoch (its saved options are used)."),
    slm_random_init: bool = typer.Option(False, "--slm-random-init", hidden=True, help="Random SLM weights (benchmarks)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Plug a frozen LLM layer into a small LM and fine-tune it on a classification task (the paper's recipe)."""
    from transformers.utils import logging as hf_logging

    from pifi_train.config import TrainConfig
    from pifi_train.runner import resume_training, run_training

    hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar; ours is the epoch bar
    progress = _TrainProgress(quiet)
    with progress:
        if resume:
            if not output_dir:
                raise typer.BadParameter("--resume needs --output-dir (the run to continue)", param_hint="--resume")
            results = resume_training(Path(output_dir), epochs, progress)
        else:
            config = TrainConfig(
                task=task, train_file=train_file, validation_file=validation_file, test_file=test_file,
                text_column=text_column, text_pair_column=text_pair_column, label_column=label_column,
                validation_fraction=validation_fraction, max_train_samples=max_train_samples,
                max_eval_samples=max_eval_samples, slm=slm, slm_pretrained=not slm_random_init,
                layer_artifact=list(layer_artifact or []) or None, method=method, plug=plug, attention=attention, post_norm=post_norm,
                pooling=pooling, dropout=dropout, epochs=3 if epochs is None else epochs, batch_size=batch_size,
                eval_batch_size=eval_batch_size, lr=lr, weight_decay=weight_decay, max_length=max_length,
                label_smoothing=label_smoothing, grad_clip=grad_clip, seed=seed, seeds=seeds, device=device,
                precision=precision, num_workers=num_workers, output_dir=output_dir, overwrite=overwrite,
            )
            results = run_training(config, progress)
    if results and _is_main_process():
        _print_results(results)


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


class _TrainProgress:
    """The library's progress callback rendered with rich: a bar per epoch (loss, examples/s), a line per epoch."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not _is_main_process()
        self.live = not self.quiet and sys.stderr.isatty()
        self._bar = None
        self._task = None

    def __enter__(self) -> "_TrainProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, event) -> None:  # type: ignore[no-untyped-def]
        if self.quiet:
            return
        if event.kind == "epoch_start" and self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}  {task.fields[rate]} ex/s"),
                                 TimeRemainingColumn(), console=console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(f"seed {event.seed} epoch {event.epoch}/{event.epochs}",
                                            total=event.steps, loss="-", rate="-")
        elif event.kind == "step" and self._bar is not None:
            self._bar.update(self._task, completed=event.step, loss=f"{event.loss:.4f}",
                             rate=f"{event.examples_per_second:.0f}")
        elif event.kind == "epoch_end":
            self._close()
            val = event.metrics["validation"]
            best = "  [green]best[/]" if event.metrics["best"] else ""
            console.print(f"seed {event.seed} epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  "
                          f"val acc {100 * val['accuracy']:.2f}  val F1 {100 * val['macro_f1']:.2f}  "
                          f"{event.examples_per_second:.0f} ex/s{best}", highlight=False)


def _print_results(results: list) -> None:
    from rich.table import Table

    from pifi_train.runner import summarize_seeds

    table = Table(title="pifi train: best epoch per seed (accuracy / macro-F1, %)", title_justify="left")
    for col in ("seed", "best epoch", "val acc", "val F1", "test acc", "test F1", "run"):
        table.add_column(col, justify="left" if col == "run" else "right")
    pct = lambda split, key: f"{100 * split[key]:.2f}" if split else "-"  # noqa: E731
    for r in results:
        final = r.metrics["final"]
        table.add_row(str(r.seed), str(final["best_epoch"]), pct(final["validation"], "accuracy"),
                      pct(final["validation"], "macro_f1"), pct(final["test"], "accuracy"), pct(final["test"], "macro_f1"),
                      str(r.run_dir))
    if len(results) > 1:
        summary = summarize_seeds(results)
        cell = lambda key: (f"{100 * summary[key]['mean']:.2f} ± {100 * summary[key]['std']:.2f}" if key in summary else "-")  # noqa: E731
        table.add_row("mean ± std", "", cell("validation_accuracy"), cell("validation_macro_f1"), cell("test_accuracy"),
                      cell("test_macro_f1"), str(results[0].run_dir.parent))
    Console().print(table)


@app.command()
def predict(
    run_dir: str = typer.Option(..., "--run-dir", help="A finished run directory (one seed)."),
    text: Optional[list[str]] = typer.Option(None, "--text", help="Text to classify (repeat for several)."),
    text_pair: Optional[list[str]] = typer.Option(None, "--text-pair", help="Second text of each pair (runs trained on pairs)."),
    file: Optional[str] = typer.Option(None, "--file", help="Texts to classify: .txt (one per line) or .csv/.tsv/.jsonl with the run's columns; accuracy is printed when labels are present."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write predictions as JSONL here instead of printing them."),
    layer_artifact: Optional[list[str]] = typer.Option(None, "--layer-artifact", help="The run's artifact if it moved (its sha256 must match); repeat for a run with several layers, in order."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(64, "--batch-size", help="Texts per forward pass."),
) -> None:
    """Classify texts with a trained run (checkpoint + the artifact it was trained with)."""
    import json

    from pifi_train.predict import accuracy, load_run, predict as run_predict, read_inputs

    if (file is None) == (not text):
        raise typer.BadParameter("pass --text (one or more) or --file", param_hint="--text/--file")
    loaded = load_run(run_dir, device=device, layer_artifact=list(layer_artifact or []) or None)
    labels = None
    if file is not None:
        texts, pairs, labels = read_inputs(file, loaded)
    else:
        texts, pairs = list(text or []), (list(text_pair) if text_pair else None)
    predictions = run_predict(loaded, texts, pairs, batch_size=batch_size)
    lines = [json.dumps({"text": t, "label": p.label, "probabilities": p.probabilities}) for t, p in zip(texts, predictions)]
    if output is not None:
        Path(output).write_text("".join(line + "\n" for line in lines))
        Console().print(f"wrote {len(lines)} predictions to {output}", highlight=False)
    else:
        for t, p in zip(texts, predictions):
            probs = "  ".join(f"{name} {value:.4f}" for name, value in p.probabilities.items())
            typer.echo(f"{p.label}\t{probs}\t{t}")
    if labels is not None:
        Console().print(f"accuracy {100 * accuracy(predictions, labels, loaded.label_names):.2f}% on {len(labels)} labelled examples", highlight=False)


@app.command()
def report(
    run_dirs: list[str] = typer.Argument(..., help="Run directories, seed sweeps, or folders holding them."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Where to write the validation-curve PNG (default pifi-report.png; needs matplotlib)."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Do not draw the PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Compare runs: base vs pifi, mean ± std over seeds, validation curves."""
    import dataclasses
    import json

    from rich.table import Table

    from pifi_train.report import GROUP_FIELDS, build_report

    result = build_report(run_dirs, None if no_plot else Path(plot or "pifi-report.png"), plot_required=plot is not None)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in result.rows], indent=2))
        return
    table = Table(title="pifi report (accuracy / macro-F1 in %, mean ± std over seeds)", title_justify="left")
    for col in (*GROUP_FIELDS, "split", "seeds", "accuracy", "macro-F1", "Δ acc vs base"):
        table.add_column(col, justify="right" if col in ("seeds", "accuracy", "macro-F1", "Δ acc vs base") else "left")
    for row in result.rows:
        delta = f"{100 * row.delta_vs_base:+.2f}" if row.delta_vs_base is not None else ""
        table.add_row(*row.group, row.split, str(len(row.seeds)), f"{100 * row.accuracy_mean:.2f} ± {100 * row.accuracy_std:.2f}",
                      f"{100 * row.macro_f1_mean:.2f} ± {100 * row.macro_f1_std:.2f}", delta)
    out = Console()
    out.print(table)
    for skipped in result.skipped:
        out.print(f"[yellow]unfinished, skipped:[/] {skipped}", highlight=False, soft_wrap=True)
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if result.plot is not None:
        out.print(f"validation curves: {result.plot}", highlight=False, soft_wrap=True)


# ---- demo ------------------------------------------------------------------------------------


@app.command()
def demo(
    quick: bool = typer.Option(False, "--quick", help="A few hundred examples, 2 epochs (~1-2 min on 2 CPU cores): a smoke test."),
    seeds: int = typer.Option(1, "--seeds", help="Train each configuration with this many seeds (mean ± std)."),
    seed: int = typer.Option(2023, "--seed", help="First training seed (the data split is fixed)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default 3; --quick: 2)."),
    train_size: Optional[int] = typer.Option(None, "--train-size", help="Training snippets used (default 2048 of 10,248; --quick: 256)."),
    eval_size: Optional[int] = typer.Option(None, "--eval-size", help="Validation/test snippets (default: all 1,280 each; --quick: 64)."),
    lr: float = typer.Option(5e-5, "--lr", help="Adam learning rate (the paper's 5e-5)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", help="Where runs, data splits and the plot go (default runs/demo-<time>)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """The whole pipeline offline on real assets: SmolLM2's last layer from its GGUF, MiniLM base vs + PiFi."""
    from transformers.utils import logging as hf_logging

    from pifi_train.demo import DemoOptions, run_demo

    hf_logging.disable_progress_bar()
    options = DemoOptions(quick=quick, seeds=seeds, seed=seed, epochs=epochs, train_size=train_size,
                          eval_size=eval_size, lr=lr, device=device, output_dir=output_dir,
                          cache_dir=str(cache_dir) if cache_dir else None)
    stage = (lambda text: None) if quiet else (lambda text: console.print(f"[bold]{text}[/]", highlight=False))
    with _TrainProgress(quiet) as progress:
        result = run_demo(options, progress, stage)
    _print_demo(result)


def _print_demo(result: "object") -> None:
    from rich import box
    from rich.table import Table

    r = result  # pifi_train.demo.DemoResult
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731

    def pct(values: list) -> str:  # "80.23" for one seed, "80.2±1.1" (mean ± sample std) for several
        mean, std = r.methods[0].stat(values)
        return f"{100 * mean:.2f}" if len(values) == 1 else f"{100 * mean:.1f}±{100 * std:.1f}"

    out = Console()
    layer = r.layer
    out.print(
        f"layer: {layer.parameters / 1e6:.2f}M params, artifact {mb(layer.artifact_bytes)} (fp32, dequantized from "
        f"{'/'.join(layer.quantization_types) or 'float'}) = {100 * layer.artifact_bytes / layer.gguf_bytes:.1f}% of the "
        f"{mb(layer.gguf_bytes)} GGUF; extraction read {mb(layer.gguf_layer_bytes)} of layer tensors "
        f"({100 * layer.gguf_layer_bytes / layer.gguf_bytes:.1f}%) + the header"
        f"{' (cache hit)' if layer.from_cache else f' in {layer.seconds:.1f} s'}",
        highlight=False, soft_wrap=True)
    d = r.data
    table = Table(title=f"Rotten Tomatoes fresh/rotten, test {d['test']} snippets; trained on {d['train']} of "
                        f"{d['train_full']}, {r.options['epochs']} epochs, {r.options['seeds']} seed(s)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("model", "acc %", "F1 %", "Δ acc", "trained", "frozen", "s/step"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    base = next((m for m in r.methods if m.name == "base"), None)
    for m in r.methods:
        delta = f"{100 * (m.stat(m.accuracy)[0] - base.stat(base.accuracy)[0]):+.2f}" if base and m is not base else ""
        frozen = f"{m.frozen_parameters / 1e6:.2f}M" if m.frozen_parameters else "0"
        table.add_row(m.label, pct(m.accuracy), pct(m.macro_f1), delta, f"{m.trainable_parameters / 1e6:.2f}M", frozen,
                      f"{m.step_seconds:.2f}")
    out.print(table)
    out.print("acc/F1: test split, best epoch by validation accuracy; trained/frozen: parameters; s/step: 32 snippets",
              highlight=False, soft_wrap=True)
    if r.plot:
        out.print(f"validation curves: {r.plot}", highlight=False, soft_wrap=True)
    times = ", ".join(f"{m.name} {m.seconds / 60:.1f}" for m in r.methods)
    out.print(f"runs, data splits and demo.json: {r.output_dir}  (total {r.seconds / 60:.1f} min: {times})",
              highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
