"""Every code block of README.md stays true: extracted from the README itself, so a new block is covered at once.

* The Quick start's two commands are what CI (`.ci/run`) runs, as written (the first in its `--quick` mode).
* Every `pifi ...` line of every bash block parses with the real CLI (options exist, values convert).
* The lines that are cheap run for real against tiny stand-ins served under the README's own names on the
  loopback Hub (a 32-layer tiny llama as meta-llama/Llama-3.1-8B at the README's commit, a tiny qwen2 as
  Qwen/Qwen2.5-7B, a tiny BERT as google-bert/bert-base-uncased): extract, inspect, cache, paper.
* Every python block runs, with only its free names (a Trainer's args and datasets, an input x) supplied.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
LLAMA, LLAMA_SHA = "meta-llama/Llama-3.1-8B", "0e9e39f249a16976918f6564b8830bc894c89659"  # the README's commit
QWEN, BERT = "Qwen/Qwen2.5-7B", "google-bert/bert-base-uncased"
RUN = {"extract", "inspect", "paper", "cache ls", "cache verify", "cache rm", "cache prune"}  # cheap on stand-ins


def blocks(lang: str) -> list[tuple[int, str]]:
    """(line number, code) of every fenced block of ``lang``."""
    return [(README[:m.start()].count("\n") + 1, m.group(2))
            for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.S | re.M) if m.group(1) == lang]


def commands(code: str) -> list[str]:
    """The logical lines of a bash block (continuations joined, comments dropped)."""
    lines, current = [], ""
    for raw in code.splitlines():
        line = re.sub(r"\s+#.*$|^#.*$", "", raw.rstrip())
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        if (current + line).strip():
            lines.append((current + line).strip())
        current = ""
    return lines


def pifi_args(line: str) -> list[str] | None:
    """The argv of a `pifi ...` line (also under torchrun), placeholders ("...") dropped; None for other lines."""
    line = line.replace("$(which pifi)", "pifi")
    if " pifi " in f" {line}" and not line.startswith("pifi "):
        line = line[line.index("pifi "):]
    if not line.startswith("pifi "):
        return None
    return [a for a in shlex.split(line)[1:] if a != "..."]


def section_commands(title: str) -> list[str]:
    section = README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block under '## {title}'"
    return commands(block.group(1))


# ---- the Quick start is what CI runs ---------------------------------------------------------------------
def test_quick_start_is_what_ci_runs_as_written():
    first, second = section_commands("Quick start")
    assert first == "bash scripts/quickstart.sh" and second == "python -m pytest -q" == section_commands("Tests")[0]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]
    assert ci[0] == f"{first} --quick"  # the first command itself, the demo in its short mode
    assert ci[-1] == second
    script = (ROOT / "scripts" / "quickstart.sh").read_text()
    extras = re.search(r'pip install -e "\.\[([\w,]+)\]"', script).group(1).split(",")
    assert "test" in extras, "the second command needs pytest: the first must install the test extra"
    assert "install_demo_assets.sh" in script and "python -m cli demo" in script
    assert "https://download.pytorch.org/whl/cpu" in script and "pip install -q" not in script  # progress shown


# ---- every pifi line parses ------------------------------------------------------------------------------
PIFI_LINES = [(n, args) for n, code in blocks("bash") for line in commands(code) if (args := pifi_args(line))]


def _command(args: list[str]):
    from typer.main import get_command

    import cli

    group = get_command(cli.app)
    command, rest = group.commands[args[0]], args[1:]  # type: ignore[attr-defined]
    if hasattr(command, "commands"):  # pifi cache ...
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


@pytest.mark.parametrize("line, args", PIFI_LINES, ids=[f"L{n}:{' '.join(a)[:50]}" for n, a in PIFI_LINES])
def test_every_pifi_line_parses(line, args):
    command, rest = _command(args)
    context = command.make_context(f"pifi {args[0]}", list(rest))  # unknown options and bad values raise here
    assert context.params is not None


# ---- the cheap lines run on stand-ins ----------------------------------------------------------------------
@pytest.fixture
def readme_hub(hub_server, tmp_path_factory):
    """The README's model names served by the loopback Hub as tiny stand-ins."""
    from tiny_models import make_tiny_model
    from train_fixtures import make_tiny_bert

    models = tmp_path_factory.mktemp("readme_models")
    hub_server.add_repo(LLAMA, make_tiny_model("llama", models / "llama", num_layers=32, hidden=32), sha=LLAMA_SHA)
    qwen_sha = hub_server.add_repo(QWEN, make_tiny_model("qwen2", models / "qwen", num_layers=4, hidden=32))
    hub_server.add_repo(BERT, make_tiny_bert(models / "bert"))
    return {"qwen_sha": qwen_sha, "models": models}


def _runnable(args: list[str]) -> bool:
    name = args[0] if args[0] != "cache" else f"cache {args[1]}"
    trains = name == "paper" and "--run" in args  # a grid of real tasks (tests/test_paper_run.py runs stand-ins)
    return name in RUN and not trains and "--gguf-file" not in args and not any(a.endswith(".gguf") for a in args)


def _run_block(capsys, code: str, substitutions: dict[str, str]) -> list[list[str]]:
    ran = []
    for line in commands(code):
        args = pifi_args(line)
        if args and _runnable(args):
            args = [substitutions.get(a, a) for a in args]
            code_, out, err = run_cli(capsys, *args)
            assert code_ == 0, f"pifi {' '.join(args)}: {err}"
            ran.append(args)
    return ran


def test_extract_inspect_cache_and_paper_blocks_run(readme_hub, tmp_path, monkeypatch, capsys):
    from tiny_models import make_tiny_model

    monkeypatch.chdir(tmp_path)
    make_tiny_model("llama", tmp_path / "my-model", num_layers=13, hidden=32)
    subs = {"0123abcd...": readme_hub["qwen_sha"]}
    ran = []
    for number, code in blocks("bash"):
        if number > README.index("## Sharing fine-tuned models") and "pifi paper" not in code:
            continue  # the later blocks train, push or pull
        if "pifi inspect" in code:  # the file the inspect block names, as the extract block's first line makes it
            assert run_cli(capsys, "extract", "--llm", LLAMA, "--layer", "-1", "-o",
                           "Llama-3.1-8B-layer-31.safetensors")[0] == 0
        ran += _run_block(capsys, code, subs)
    names = {" ".join(a[:2]) for a in ran}
    assert {"extract --llm", "inspect Llama-3.1-8B-layer-31.safetensors", "cache ls", "cache rm", "paper 5"} <= names
    # "Several --layer values write several artifacts, one per layer (<name>-layer-<i>[.<dtype>].safetensors)"
    assert sorted(p.name for p in (tmp_path / "layers").iterdir()) == [
        "Qwen2.5-7B-layer-2.bf16.safetensors", "Qwen2.5-7B-layer-3.bf16.safetensors"]
    assert (tmp_path / "layer12.safetensors").is_file()


# ---- the python blocks run ----------------------------------------------------------------------------------
def _python_block(marker: str) -> str:
    found = [code for _, code in blocks("python") if marker in code]
    assert len(found) == 1, marker
    return found[0]


def test_every_python_block_is_covered():
    markers = ("Trainer(model=model", "from layer_cache import", "from pifi_extract import extract_layer")
    assert all(any(m in code for m in markers) for _, code in blocks("python")), "a new python block needs a test"


def test_python_block_trainer(readme_hub, tmp_path, monkeypatch, capsys):
    pytest.importorskip("accelerate")
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from train_fixtures import synthetic_rows

    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "extract", "--llm", LLAMA, "--layer", "-1")[0] == 0  # the layer the block names

    def dataset(tokenizer, n, seed):
        rows = synthetic_rows(n, seed)
        enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=16)
        return [{"input_ids": i, "attention_mask": m, "labels": r["label"]}
                for i, m, r in zip(enc["input_ids"], enc["attention_mask"], rows)]

    class Data:  # train/val built lazily from the model's tokenizer, as the block's reader would
        def __init__(self, n, seed):
            self.n, self.seed, self.rows = n, seed, None

        def __getitem__(self, i):
            return self.rows[i]

        def __len__(self):
            return self.n

    train, val = Data(32, 0), Data(8, 1)
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=2, per_device_train_batch_size=8,
                             report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no")
    code = _python_block("Trainer(model=model").replace("model = PifiModel.from_slm(", "model = _fill(PifiModel.from_slm(")
    code = code.replace("num_labels=2)", "num_labels=2))")

    def fill(model):
        for data in (train, val):
            data.rows = dataset(model.tokenizer, data.n, data.seed)
        return model

    namespace = {"Trainer": Trainer, "args": args, "train": train, "val": val, "_fill": fill,
                 "DataCollatorWithPadding": DataCollatorWithPadding}
    exec(compile(code + "\n_result = " + commands(code)[-1].split("#")[0], "README.md", "exec"), namespace)
    assert len(namespace["_result"]) == 2 and (tmp_path / "out" / "config.json").is_file()


def test_python_block_layer_cache(readme_hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_python_block("from layer_cache import"), "README.md", "exec"), namespace)
    assert namespace["art"].key.dtype == "bf16" and namespace["path"] == namespace["art"].path


def test_python_block_artifact(readme_hub, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    code = _python_block("from pifi_extract import extract_layer")
    if not torch.cuda.is_available():
        code = code.replace('device="cuda"', 'device="cpu"')
    namespace = {"x": torch.randn(2, 3, 32)}  # (B, T, H): the tiny stand-in's hidden size
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["layer"].dtype == torch.bfloat16 and namespace["y"].shape == (2, 3, 32)
