"""The CLI shell itself: usage errors are click's message and exit 2 (never a traceback), --version."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _pifi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import cli; cli.main()", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "Usage: pifi"),
        (("extract",), "Missing option '--llm'"),
        (("extract", "--llm", "x", "--layer", "1", "--dtype", "q4"), "choose keep, bf16, fp16 or fp32"),
        (("no-such-command",), "No such command"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args, message):
    proc = _pifi(*args)
    assert proc.returncode == 2
    assert message in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_version():
    from pifi_extract import __version__

    proc = _pifi("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"pifi {__version__}"
