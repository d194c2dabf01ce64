"""`pifi --help`, `pifi inspect`, `pifi cache ls` and `pifi extract --dtype keep` never import torch (issue 15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_models import make_tiny_model

# Runs the CLI in a fresh interpreter, then reports whether torch got imported on the way.
_PROBE = (
    "import sys, cli\n"
    "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code or 0\nelse:\n    code = 0\n"
    "print('\\nPROBE', 'torch' in sys.modules, code)\n"
)


def _run(*args: str) -> tuple[bool, int, str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120)
    last = proc.stdout.strip().splitlines()[-1].split()
    assert last[0] == "PROBE", proc.stdout + proc.stderr
    return last[1] == "True", int(last[2]), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return make_tiny_model("llama", tmp_path_factory.mktemp("models") / "llama", num_layers=2)


def test_help_imports_no_torch():
    torch_loaded, code, out = _run("--help")
    assert code == 0 and "extract" in out
    assert not torch_loaded


def test_extract_keep_inspect_and_cache_ls_import_no_torch(tmp_path, llama_dir):
    artifact = tmp_path / "layer.safetensors"
    torch_loaded, code, out = _run("extract", "--llm", str(llama_dir), "--layer", "-1", "--dtype", "keep",
                                   "-o", str(artifact), "-q")
    assert code == 0 and artifact.is_file(), out
    assert not torch_loaded

    torch_loaded, code, out = _run("inspect", str(artifact), "--json")
    assert code == 0 and json.loads(out.split("\nPROBE")[0])["provenance"]["layer_index"] == 1
    assert not torch_loaded

    torch_loaded, code, out = _run("cache", "ls")
    assert code == 0, out
    assert not torch_loaded
