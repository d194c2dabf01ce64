"""The `pifi` command line: parses options and calls the library, nothing more.

Every :class:`~pifi_extract.errors.PifiError` becomes one line on stderr and exit
code 2; set ``PIFI_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import os
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


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: run the app, turning pifi errors into one line and exit code 2."""
    debug = os.environ.get("PIFI_DEBUG", "") not in ("", "0")
    try:
        app(args=argv, standalone_mode=False)
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
    except Exception as err:  # click usage errors and friends
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(2)
        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(130)
        raise


# ---- commands are registered below (one section per capability) ----


# ---- extract / inspect -----------------------------------------------------------------------


@app.command()
def extract(
    llm: str = typer.Option(..., "--llm", help="Hub repo id (org/name) or a local folder with config.json + *.safetensors."),
    layer: list[int] = typer.Option(..., "--layer", help="Layer index; negative counts from the end (-1 = last). Repeat for several layers: one artifact each."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit sha (default: main)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Artifact file (one layer) or folder (several layers)."),
    dtype: str = typer.Option("keep", "--dtype", help="keep | bf16 | fp16 | fp32 (floating tensors only)."),
    token: Optional[str] = typer.Option(None, "--token", help="Hub token (default: HF_TOKEN or the `hf auth login` token)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Read ONE decoder layer of an LLM (only its bytes) into a small standalone artifact."""
    from pifi_extract.extract import extract_layers

    if dtype not in ("keep", "bf16", "fp16", "fp32"):
        raise typer.BadParameter("choose keep, bf16, fp16 or fp32", param_hint="--dtype")
    with _progress(quiet, "extracting") as progress:
        results = extract_layers(
            llm,
            layer,
            lambda plan: _output_path(output, llm, plan.layer_index, dtype, several=len(layer) > 1),
            revision=revision,
            token=token,
            dtype=dtype,
            progress=progress,
        )
    for result in results:
        _print_summary(result.path, result.info)


@app.command()
def inspect(
    artifact: str = typer.Argument(..., help="Artifact file."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Show an artifact's provenance, config and tensors."""
    from pifi_extract.artifact import read_artifact
    from pifi_extract.inspect import describe

    info = read_artifact(artifact)
    if as_json:
        import json

        typer.echo(json.dumps(describe(info), indent=2, sort_keys=True))
        return
    _print_inspect(info)


def _output_path(output: Optional[Path], llm: str, index: int, dtype: str, *, several: bool) -> Path:
    name = f"{Path(llm.rstrip('/')).name}-layer-{index}" + ("" if dtype == "keep" else f".{dtype}") + ".safetensors"
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


if __name__ == "__main__":
    main()
