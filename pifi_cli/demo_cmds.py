"""`pifi demo`: the whole pipeline offline on real pip-shipped assets."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from pifi_train.demo import METHODS, DemoOptions

from .common import CacheDirOpt, DeviceOpt, QuietOpt, err_console, field_default
from .common import out_console as out

D = lambda name: field_default(DemoOptions, name)  # noqa: E731


def demo(
    quick: Annotated[bool, typer.Option("--quick", help="256 training snippets, 64 + 64 + 64 evaluated, 2 epochs (~2 min on 2 CPU cores): a smoke test.")] = D("quick"),
    seeds: Annotated[int, typer.Option("--seeds", help="Train each configuration with this many seeds (mean ± std; the bootstrap pairs runs by seed).")] = D("seeds"),
    seed: Annotated[int, typer.Option("--seed", help="First training seed (the data split is fixed).")] = D("seed"),
    methods: Annotated[Optional[str], typer.Option("--methods", help=f"Comma-separated arms among {', '.join(METHODS)} (default: {','.join(D('methods'))}); the base always runs.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs (default 3; --quick: 2).")] = D("epochs"),
    train_size: Annotated[Optional[int], typer.Option("--train-size", help="Training snippets used (default 2048 of 10,248; --quick: 256).")] = D("train_size"),
    eval_size: Annotated[Optional[int], typer.Option("--eval-size", help="Validation/test snippets and shifted-test tweets (default: all 1,280 each, 1,280 tweets; --quick: 64).")] = D("eval_size"),
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (the paper's 5e-5).")] = D("lr"),
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Paired-bootstrap resamples of the test examples for Δ's interval and p.")] = D("bootstrap"),
    device: DeviceOpt = D("device"),
    output_dir: Annotated[Optional[str], typer.Option("--output-dir", help="Where runs, data splits and the plot go (default runs/demo-<time>).")] = D("output_dir"),
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The whole pipeline offline on real assets: SmolLM2's last layer from its GGUF, MiniLM base vs + PiFi."""
    from transformers.utils import logging as hf_logging

    from pifi_train.demo import run_demo

    hf_logging.disable_progress_bar()
    options = DemoOptions(quick=quick, seeds=seeds, seed=seed, epochs=epochs, train_size=train_size,
                          eval_size=eval_size, lr=lr, bootstrap=bootstrap, device=device, output_dir=output_dir,
                          cache_dir=str(cache_dir) if cache_dir else None)
    if methods is not None:
        options.methods = tuple(m.strip() for m in methods.split(",") if m.strip())
    with DemoProgress(quiet) as progress:
        result = run_demo(options, progress, progress.stage, progress.plan)
    _print_demo(result)


class DemoProgress:
    """One overall line across every run (share done, elapsed, ETA; redrawn during evaluation too) above the
    current epoch's bar on a terminal; otherwise a line per epoch with the overall share and ETA."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self.eta: Any = None
        self._bar: Any = None
        self._epoch: Any = None

    def __enter__(self) -> "DemoProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def stage(self, text: str) -> None:
        if not self.quiet:
            err_console.print(text, highlight=False, markup=False, soft_wrap=True)

    def plan(self, plan: Any) -> None:
        from pifi_train.eta import RunsEta

        self.eta = RunsEta(plan)
        if not self.live:
            return
        from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
        from rich.text import Text

        eta = self.eta

        class Overall(ProgressColumn):  # re-read at every refresh: moves while evaluation runs
            def render(self, task: Any) -> Text:
                if task.fields.get("kind") != "overall":
                    return Text("")
                from pifi_train.eta import format_eta

                snap = eta.snapshot()
                return Text(f"{format_eta(snap)} · run {snap.run}/{plan.runs} {snap.phase}")

        class Bar(BarColumn):  # the overall bar follows the estimate between events too
            def render(self, task: Any) -> Any:
                if task.fields.get("kind") == "overall":
                    from rich.progress_bar import ProgressBar

                    return ProgressBar(total=1.0, completed=eta.snapshot().fraction, width=self.bar_width)
                return super().render(task)

        self._bar = Progress(TextColumn("{task.description}"), Bar(), TextColumn("{task.fields[text]}"), Overall(), console=err_console, transient=True,
                             refresh_per_second=2)
        self._bar.start()
        self._bar.add_task("overall", total=None, text="", kind="overall")

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if self.eta is not None:
            self.eta.update(event)
        if self._bar is not None:
            if event.kind == "epoch_start":
                if self._epoch is not None:
                    self._bar.remove_task(self._epoch)
                self._epoch = self._bar.add_task(f"seed {event.seed} epoch {event.epoch}/{event.epochs}",
                                                 total=event.steps, text=f"0/{event.steps}", kind="epoch")
            elif event.kind == "step" and self._epoch is not None:
                self._bar.update(self._epoch, completed=event.step,
                                 text=f"{event.step}/{event.steps} loss {event.loss:.4f}")
        if event.kind == "epoch_end":
            val = event.metrics["validation"]
            line = (f"seed {event.seed} epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  "
                    f"val acc {100 * val['accuracy']:.2f}  {event.examples_per_second:.0f} ex/s")
            if self.eta is not None:
                from pifi_train.eta import format_eta

                line += f"  (overall {format_eta(self.eta.snapshot())})"
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)


def _print_demo(result: Any) -> None:
    from rich import box
    from rich.table import Table

    r = result  # pifi_train.demo.DemoResult
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731

    def pct(values: list) -> str:  # "80.23" for one seed, "80.2±1.1" (mean ± sample std) for several
        mean, std = r.methods[0].stat(values)
        return f"{100 * mean:.2f}" if len(values) == 1 else f"{100 * mean:.1f}±{100 * std:.1f}"

    layer = r.layer
    out.print(
        f"layer: {layer.parameters / 1e6:.2f}M params, artifact {mb(layer.artifact_bytes)} (fp32, dequantized from "
        f"{'/'.join(layer.quantization_types) or 'float'}) = {100 * layer.artifact_bytes / layer.gguf_bytes:.1f}% of the "
        f"{mb(layer.gguf_bytes)} GGUF; extraction read {mb(layer.gguf_layer_bytes)} of layer tensors "
        f"({100 * layer.gguf_layer_bytes / layer.gguf_bytes:.1f}%) + the header"
        f"{' (cache hit)' if layer.from_cache else f' in {layer.seconds:.1f} s'}",
        highlight=False, soft_wrap=True, markup=False)
    d = r.data
    table = Table(title=f"Rotten Tomatoes positive/negative: trained on {d['train']} of {d['train_full']} snippets, "
                        f"{r.options['epochs']} epochs, {r.options['seeds']} seed(s); tested on {d['test']} snippets "
                        f"and {d.get('tweets', 0)} tweets", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("model", "acc %", "F1 %", "tweets acc %", "trained", "frozen", "s/step"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for m in r.methods:
        frozen = f"{m.frozen_parameters / 1e6:.2f}M" if m.frozen_parameters else "0"
        table.add_row(m.label, pct(m.accuracy), pct(m.macro_f1), pct(m.shifted_accuracy),
                      f"{m.trainable_parameters / 1e6:.2f}M", frozen, f"{m.step_seconds:.2f}")
    out.print(table)
    out.print("acc/F1: test split, best epoch by validation accuracy; tweets: the same model on tweets (domain shift, "
              "the paper's Table 3 protocol); trained/frozen: parameters; s/step: 32 snippets",
              highlight=False, soft_wrap=True, markup=False)
    for line in comparison_lines(r):
        out.print(line, highlight=False, soft_wrap=True, markup=False)
    if r.plot:
        out.print(f"validation curves: {r.plot}", highlight=False, soft_wrap=True, markup=False)
    times = ", ".join(f"{m.name} {m.seconds / 60:.1f}" for m in r.methods)
    out.print(f"runs, data splits and demo.json: {r.output_dir}  (total {r.seconds / 60:.1f} min: {times})",
              highlight=False, soft_wrap=True, markup=False)


def comparison_lines(result: Any) -> list[str]:
    """Δ accuracy vs the base with its paired-bootstrap 95 % CI and p, and one verdict line per comparison."""
    from pifi_train.demo import METHODS, TEST_SETS

    lines = []
    for c in result.comparisons:
        d, n = c.difference, c.samples
        p = f"p < {1 / n:.3g}" if d.p_value == 0 else f"p = {d.p_value:.3f}"
        verdict = (f"{'better' if d.mean > 0 else 'worse'} than the base on these test examples, beyond their noise "
                   f"(training seeds vary more: confirm with --seeds 3)" if c.significant
                   else "not significantly different from the base (the interval contains 0)")
        lines.append(f"{METHODS[c.method][2]} on {TEST_SETS[c.test_set]}: Δ acc {100 * d.mean:+.2f} points, 95 % CI "
                     f"[{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}], {p} (paired bootstrap, {n} resamples): "
                     f"{verdict}")
    return lines


def register(app: typer.Typer) -> None:
    app.command()(demo)
