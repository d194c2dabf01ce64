"""The `pifi` command line: parses options and calls the library, nothing more.

Every :class:`~pifi_extract.errors.PifiError` becomes one line on stderr and exit
code 2; set ``PIFI_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import os
import sys
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


if __name__ == "__main__":
    main()
