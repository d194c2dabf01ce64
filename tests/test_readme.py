"""The README's quick start and test command stay true: CI runs what the README says, the scripts exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section_code(title: str) -> list[str]:
    section = README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block under '## {title}'"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def test_quick_start_is_two_commands_install_and_run_then_tests():
    first, second = _section_code("Quick start")
    assert first.startswith("bash ") and (ROOT / first.split()[1]).is_file()
    assert second == _section_code("Tests")[0]


def test_ci_runs_exactly_the_readme_test_command():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert ci[-1] == _section_code("Tests")[0]
    assert any(line.startswith("python -m pip install -q torch==2.13.0") for line in ci)
    installs = [i for i, line in enumerate(ci) if "pip install" in line]
    assert installs and "torch==2.13.0" in ci[installs[0]], "torch must be installed first (the CPU wheel on disk)"


def test_quickstart_script_installs_pifi_and_runs_the_demo():
    first = _section_code("Quick start")[0]
    script = (ROOT / first.split()[1]).read_text()
    assert "torch==2.13.0" in script and 'pip install' in script and "pifi demo" in script


@pytest.mark.parametrize("command", sorted(set(re.findall(r"^pifi (\w+)", README, re.M))))
def test_every_readme_command_exists(command):
    from typer.main import get_command

    import cli

    assert command in get_command(cli.app).commands  # type: ignore[attr-defined]
