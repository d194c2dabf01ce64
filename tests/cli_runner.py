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


def fails_in_one_line(capsys, args: list[str], match: str) -> str:
    """``pifi ARGS`` must exit 2 with pifi's one-line error containing ``match``; returns that line."""
    import cli
    import pytest

    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    assert match in err, err
    return err
