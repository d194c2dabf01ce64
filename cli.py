"""The `pifi` command line: parses options and calls the library, nothing more.

Every :class:`~pifi_extract.errors.PifiError` becomes one line on stderr and exit
code 2; set ``PIFI_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
from typing import Optional

import typer
from pifi_cli import (cache_cmds, demo_cmds, extract_cmds, paper_cmds, predict_cmds, push_cmds, report_cmds, select_cmds,
                      train_cmds)
from pifi_cli.common import fail as _fail
from pifi_extract.errors import PifiError

app = typer.Typer(
    name="pifi",
    help="PiFi made practical: extract one LLM layer, cache and share it, plug it into a small LM and fine-tune.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _Interrupted(Exception):
    """Ctrl-C / SIGTERM inside a command, carried past typer (which turns a KeyboardInterrupt into a silent exit
    130) with what the library said was kept (e.g. how to resume)."""


def _carry_interrupts(command):  # type: ignore[no-untyped-def]
    @functools.wraps(command)
    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as err:
            raise _Interrupted(str(err.args[0]) if err.args else INTERRUPTED) from None

    return run


INTERRUPTED = "interrupted; nothing partial was left behind"


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
    except (KeyboardInterrupt, _Interrupted) as err:
        if debug:
            raise
        _fail(str(err) or INTERRUPTED)
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


# ---- commands: one module per capability (pifi_cli/*_cmds.py), in the order `pifi --help` lists them ----
for _module in (extract_cmds, cache_cmds, train_cmds, predict_cmds, report_cmds, select_cmds, push_cmds, demo_cmds,
                paper_cmds):
    _module.register(app)
for _command in app.registered_commands:
    _command.callback = _carry_interrupts(_command.callback)


if __name__ == "__main__":
    main()
