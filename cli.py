"""The `pifi` command line: parses options and calls the library, nothing more.

Every :class:`~pifi_extract.errors.PifiError` becomes one line on stderr and exit
code 2; set ``PIFI_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import signal
import sys
import threading
from typing import Optional

import typer
from pifi_cli.common import PlainHelpGroup
from pifi_cli.common import fail as _fail
from pifi_extract.errors import PifiError

_app = typer.Typer(
    name="pifi",
    help="PiFi made practical: extract one LLM layer, cache and share it, plug it into a small LM and fine-tune.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=PlainHelpGroup,  # help texts are plain text: "pifi[lora]" must not be read as rich markup
)


def _show_version(value: bool) -> None:
    if value:
        from pifi_extract import __version__

        typer.echo(f"pifi {__version__}")
        raise typer.Exit()


@_app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """PiFi made practical: extract one LLM layer, cache and share it, plug it into a small LM and fine-tune."""


# What an interrupted command leaves behind, said on its one line when the library said nothing more (e.g. how to
# resume a training run); commands not listed say DEFAULT_INTERRUPTED.
INTERRUPTED = {"extract": "interrupted; nothing partial was kept (temporary files removed)"}
DEFAULT_INTERRUPTED = "interrupted; nothing partial was left behind"
QUICK_EXIT = {"extract", "inspect"}  # commands whose process may skip the interpreter's final garbage collections


class _Interrupted(Exception):
    """Ctrl-C / SIGTERM inside a command, carried past typer (which turns a KeyboardInterrupt into a silent exit
    130) with what the library said was kept (e.g. how to resume)."""


def _carry_interrupts(command):  # type: ignore[no-untyped-def]
    @functools.wraps(command)
    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as err:
            raise _Interrupted(str(err.args[0]) if err.args else "") from None

    run._pifi_carries_interrupts = True  # type: ignore[attr-defined]
    return run


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: run the app, turning pifi errors into one line and exit code 2.

    Ctrl-C and SIGTERM (`kill`, job schedulers) stop the command as a KeyboardInterrupt, so temp files are
    cleaned up on the way out, and end in one line and exit code 130.
    """
    debug = os.environ.get("PIFI_DEBUG", "") not in ("", "0")
    args = list(argv if argv is not None else sys.argv[1:])
    command = next((a for a in args if not a.startswith("-")), "")
    signals: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        signals.append(signum)
        raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _register(command)
        rc = _app(args=args, prog_name="pifi", standalone_mode=False)  # typer.Exit(n) comes back as n here
        if signals and rc == 130:  # typer turned the KeyboardInterrupt into exit code 130
            raise KeyboardInterrupt
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except PifiError as err:
        if debug:
            raise
        _fail(err.one_line())
        sys.exit(2)
    except (KeyboardInterrupt, _Interrupted) as err:
        if debug:
            raise
        _fail(str(err) or INTERRUPTED.get(command, DEFAULT_INTERRUPTED))
        sys.exit(130)
    except _click_errors("ClickException") as err:  # usage errors: click's own message (and help), exit 2
        err.show()
        sys.exit(err.exit_code)
    except _click_errors("Abort"):
        sys.exit(130)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if argv is None and command in QUICK_EXIT:  # the `pifi` script ends now: skip the final collections
            gc.freeze()  # (~0.1 s; only where every file was closed explicitly: no finalizer is left to run)


def _click_errors(name: str) -> tuple[type[BaseException], ...]:
    """Click's exception class ``name``: typer >= 0.20 raises its bundled copy's, older ones click's own."""
    modules = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(module))
        except ImportError:
            pass
    return tuple(getattr(m, name) for m in modules if hasattr(m, name))


# ---- commands: one module per capability (pifi_cli/*_cmds.py), in the order `pifi --help` lists them ----
COMMAND_MODULES = {  # command -> the pifi_cli module that registers it
    "extract": "extract_cmds", "inspect": "extract_cmds", "cache": "cache_cmds", "train": "train_cmds",
    "predict": "predict_cmds", "report": "report_cmds", "cost": "cost_cmds", "select": "select_cmds", "sweep": "select_cmds",
    "push": "push_cmds", "demo": "demo_cmds", "paper": "paper_cmds",
}
_registered: set[str] = set()


def _register(command: str) -> None:
    """Register the invoked command's module only (`pifi extract` imports no training code), else every module
    (no command, help, a typo: click then lists them all)."""
    wanted = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else list(dict.fromkeys(COMMAND_MODULES.values()))
    for name in wanted:
        if name not in _registered:
            _registered.add(name)
            importlib.import_module(f"pifi_cli.{name}").register(_app)
    for registered in _app.registered_commands:  # Ctrl-C inside a command: its one line, past typer
        if not getattr(registered.callback, "_pifi_carries_interrupts", False):
            registered.callback = _carry_interrupts(registered.callback)


def __getattr__(name: str) -> typer.Typer:
    """``cli.app``: the app with every command registered (for callers that run it themselves)."""
    if name == "app":
        _register("")
        return _app
    raise AttributeError(f"module 'cli' has no attribute {name!r}")


if __name__ == "__main__":
    main()
