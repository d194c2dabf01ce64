"""What every command shares: the consoles, the one-line error, option aliases, defaults, progress bars."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console

err_console = Console(stderr=True)  # progress, warnings, errors
out_console = Console()  # results


def fail(message: str) -> None:
    """Print pifi's one-line error (``error: what went wrong; how to fix it``)."""
    from rich.markup import escape

    # escaped: "pip install 'pifi[lora]'" must not be read as rich markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """One result line on stdout, printed as is (no markup guessing, no wrapping)."""
    out_console.print(text, highlight=False, soft_wrap=True)


def warn(text: str) -> None:
    err_console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name``: the single place a default is written."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name}")


def dataclass_from_options(cls: type, options: dict[str, Any], **overrides: Any) -> Any:
    """Build dataclass ``cls`` from the command's parameters that share a field's name (plus ``overrides``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in options.items() if k in names}
    values.update(overrides)
    return cls(**values)


CACHE_DIR_HELP = "pifi cache folder (default: $PIFI_CACHE, else $XDG_CACHE_HOME/pifi or ~/.cache/pifi)."

# Options that several commands share (huggingface_hub's CLI style: one Annotated alias each).
CacheDirOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help=CACHE_DIR_HELP)]
TokenOpt = Annotated[Optional[str], typer.Option("--token", help="Hub token (default: HF_TOKEN or the `hf auth login` token).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (torchrun: one GPU per process).")]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Branch, tag or commit sha (default: main).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


class ByteProgress:
    """A rich byte progress bar on a terminal; nothing when quiet or not a TTY. Yields a library callback."""

    def __init__(self, quiet: bool, description: str) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.description = description
        self._bar: Any = None

    def __enter__(self) -> Optional[Callable[[int, int], None]]:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=err_console, transient=True,
        )
        self._bar.__enter__()
        bar, task = self._bar, self._bar.add_task(self.description, total=None)

        def callback(advance: int, total: int) -> None:
            bar.update(task, advance=advance, total=total)

        return callback

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


class StepProgress:
    """A rich bar over counted steps (layers, batches) for library callbacks ``callback(done, total, text)``."""

    def __init__(self, quiet: bool, description: str) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.description = description
        self._bar: Any = None

    def __enter__(self) -> Callable[[int, int, str], None]:
        if not self.enabled:
            return lambda done, total, text="": None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[text]}"), TimeRemainingColumn(), console=err_console,
                             transient=True)
        self._bar.__enter__()
        bar, task = self._bar, self._bar.add_task(self.description, total=None, text="")

        def callback(done: int, total: int, text: str = "") -> None:
            bar.update(task, completed=done, total=total, text=text)

        return callback

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
