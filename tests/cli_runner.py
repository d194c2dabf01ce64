"""The `pifi` CLI run in-process, as the console script runs it (cli.main: one-line errors, exit codes)."""

from __future__ import annotations


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``pifi ARGS`` in this process: (exit code, stdout, stderr), with what was printed before discarded."""
    import cli

    capsys.readouterr()
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
