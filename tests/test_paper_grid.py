"""`pifi paper`: every table and figure as a grid of TrainConfigs, its commands, its needs, the paper's numbers.

Torch-free and fast: nothing here trains (tests/test_paper_run.py runs the grids on tiny stand-ins).
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest

import cli
from cli_runner import fails_in_one_line, run_cli
from pifi_extract.errors import ConfigError, SourceNotFoundError
from pifi_train.config import TrainConfig
from pifi_train.paper import TABLES, commands, get_table, grid, plan, render, status, table_keys
from pifi_train.paper.grid import SCALES
from pifi_train.paper.numbers import METRICS, paper_numbers, paper_value
from pifi_train.paper.stand_ins import parse_stand_ins
from pifi_train.paper.tables import SWEEP_POSITIONS

PAPER = Path("/work/shared/paper/003_1e29f6056c3d4cab.txt")  # the paper's text (ACL 2025, arXiv 2506.07424)


def test_every_table_and_figure_is_listed_with_what_it_needs(capsys):
    assert table_keys() == [str(i) for i in range(1, 21)] + ["fig2", "fig3"]
    code, out, _ = run_cli(capsys, "paper")
    assert code == 0
    blocks = re.split(r"\n(?=(?:Table|Figure) )", out.strip())
    assert [b.split(" (")[0] for b in blocks] == [f"Table {i}" for i in range(1, 21)] + ["Figure 2", "Figure 3"]
    for block in blocks:  # each says that pifi runs it, or what it lacks
        assert "pifi runs it" in block or "\n  needs " in block or "no training:" in block, block
    by_name = {b.split(" (")[0]: b for b in blocks}
    assert "pifi runs it" in by_name["Table 1"] and "80 runs × 5 seeds" in by_name["Table 1"]
    assert "counts it with `pifi cost`" in by_name["Table 16"] and "counts it with `pifi cost`" in by_name["Table 20"]
    assert "ZeroGen" in by_name["Table 17"]
    assert "pifi runs it" in by_name["Table 2"] and "not yet" not in by_name["Table 2"]


@pytest.mark.parametrize("key", ["2", "3", "4", "10", "15"])
def test_tables_of_the_features_that_landed_run(key):
    """Table 2's METEOR/BERTScore/BARTScore, the tasks of Tables 3 and 4, Table 10's pooling, Table 15's
    --method llm: every run passes its family's own validation."""
    table = TABLES[key]
    state = status(table, grid(table))
    assert state.runnable and not state.partly, (state.missing, state.partly)


def test_table_2_scores_the_extra_columns_at_paper_scale_only(tmp_path):
    paper = grid(TABLES["2"], output_dir=tmp_path)
    assert all(r.config.meteor and r.config.bertscore_model and r.config.bartscore_model for r in paper)
    smoke = grid(TABLES["2"], "smoke", output_dir=tmp_path)
    assert not any(r.config.meteor or r.config.bertscore_model or r.config.bartscore_model for r in smoke)
    # a metrics-only option is no part of the folder: Figure 3's base run on Multi30K is Table 2's
    fig3 = grid(TABLES["fig3"], output_dir=tmp_path)
    assert {r.dir for r in paper if r.arm.method == "base" and r.config.slm == "google-t5/t5-base"
            and r.config.task == "multi30k"} == {r.dir for r in fig3 if r.arm.method == "base"}


def test_table_1_is_the_full_grid():
    runs = grid(TABLES["1"])
    assert len(runs) == 5 * 8 * 2 and all(r.config.seeds == 5 for r in runs)
    assert {r.config.slm for r in runs} == {"google-bert/bert-base-uncased", "FacebookAI/roberta-base",
                                           "google/electra-base-discriminator", "microsoft/deberta-base",
                                           "microsoft/deberta-v3-base"}
    assert {r.config.task for r in runs} == {"sst2", "imdb", "tweet_sentiment_binary", "tweet_offensive", "cola",
                                            "mnli", "snli", "squad"}
    squad = [r for r in runs if r.config.task == "squad"]
    assert {r.config.protocol for r in squad} == {"paper"}  # the paper's SQuAD numbers: the authors' protocol
    pifi = [r for r in runs if r.config.method == "pifi"]
    assert {r.config.layer_artifact for r in pifi} == {"meta-llama/Llama-3.1-8B:-1"}
    assert all(r.config.layer_artifact is None for r in runs if r.config.method == "base")


def test_grids_of_the_ablation_tables():
    t14 = {r.row: r for r in grid(TABLES["14"]) if r.task.task == "sst2"}
    assert t14["+ PiFi-2 layers (Llama-3.1-70B)"].config.layer_artifact == ["meta-llama/Llama-3.1-70B:-2",
                                                                          "meta-llama/Llama-3.1-70B:-1"]
    t3 = {(r.task.task, r.row): r for r in grid(TABLES["3"])}
    assert t3[("imdb", "BERT-large")].config.extra_test == ["tweet_sentiment_binary", "cr"]
    assert t3[("imdb", "BERT-large")].config.slm == "google-bert/bert-large-uncased"
    t5 = {r.row: r.config for r in grid(TABLES["5"]) if r.task.task == "cola"}
    assert t5["+ PiFi-Random-Full (Llama-3.1-8B)"].layer_init == "random"
    assert t5["+ PiFi-Random-Full (Llama-3.1-8B)"].train_layer
    assert {r.config.train_fraction for r in grid(TABLES["19"]) if "10%" in r.row} == {0.1}
    # Figure 2: positions 1, 4, ..., 32 of each LLM of §4.7 that it has (Qwen2-7B: 28 layers)
    fig2 = grid(TABLES["fig2"])
    qwen = sorted(r.arm.layers[0] + 1 for r in fig2 if r.arm.llm == "Qwen2-7B")
    assert qwen == [p for p in SWEEP_POSITIONS if p <= 28]
    assert len([r for r in fig2 if r.arm.llm == "Llama-3.1-8B"]) == len(SWEEP_POSITIONS)


def test_runs_shared_by_tables_share_their_folder(tmp_path):
    """BERT-base ± PiFi on SST-2 are the same runs in Tables 1, 5 and 12: one folder each."""
    def folders(key: str) -> set[Path]:
        return {r.dir for r in grid(TABLES[key], output_dir=tmp_path) if r.task.task == "sst2" and r.slm == "BERT-base"}

    assert folders("1") < folders("5") and folders("1") < folders("12")
    assert len({r.dir for r in grid(TABLES["10"], output_dir=tmp_path)}) == 9
    assert len({r.dir for r in grid(TABLES["fig3"], output_dir=tmp_path)}) == 10


@functools.lru_cache(maxsize=1)
def _train_command():  # type: ignore[no-untyped-def]
    from typer.main import get_command

    return get_command(cli.app).commands["train"]


def _parse_train(line: str) -> TrainConfig:
    """A printed `pifi train` command parsed by the CLI's own parser into the TrainConfig it would run."""
    from pifi_cli.dataclass_options import values_for

    words = shlex.split(line, comments=True)
    command = _train_command()
    ctx = command.make_context("train", words[2:])
    # click leaves an unset repeatable option as (): typer hands the command None (the field's default)
    params = {k: (list(v) or None) if isinstance(v, tuple) else v for k, v in ctx.params.items()
              if not (k == "epochs" and v is None)}
    return TrainConfig(**values_for(TrainConfig, params))


@pytest.mark.parametrize("key", [k for k in table_keys() if not TABLES[k].commands])
def test_printed_commands_are_the_grid(key, tmp_path):
    """Every run's printed command, parsed by `pifi train`, is exactly the run's TrainConfig; layers are
    extracted once per LLM; the last line renders the table."""
    table = TABLES[key]
    runs = grid(table, output_dir=tmp_path)
    lines = commands(table, runs, tmp_path)
    trains = [line for line in lines if line.startswith("pifi train ")]
    unique = {r.dir: r for r in runs}
    assert len(trains) == len(unique)
    for line, run in zip(trains, unique.values()):
        assert _parse_train(line).to_dict() == run.config.to_dict(), line
    extracts = [line for line in lines if line.startswith("pifi extract ")]
    assert len(extracts) == len({layer.source for r in runs for layer in r.layers})
    assert lines[-1] == f"pifi paper {key} --report --output-dir {tmp_path}"


def test_paper_n_prints_commands_and_needs(capsys):
    code, out, _ = run_cli(capsys, "paper", "18")
    assert code == 0
    assert "--method lora" in out and "# BERT-base + LoRA, CoLA" in out
    code, out, _ = run_cli(capsys, "paper", "table 10")
    assert out.startswith("# Table 10") and "# needs" not in out and "--pooling mean_with_padding" in out
    code, out, _ = run_cli(capsys, "paper", "16")
    assert "pifi cost --slm bert-base-uncased --llm Llama-3.1-8B" in out and "# needs" not in out


def test_unknown_table_and_misuse_are_one_line(capsys):
    fails_in_one_line(capsys, ["paper", "21"], "unknown table '21'")
    fails_in_one_line(capsys, ["paper", "--run"], "--run and --report need a table")
    fails_in_one_line(capsys, ["paper", "5", "--scale", "huge"], "--scale must be one of paper, smoke")
    fails_in_one_line(capsys, ["paper", "17", "--run"], "Table 17 needs ZeroGen")
    fails_in_one_line(capsys, ["paper", "5", "--run", "--launcher", "cloud"], "--launcher must be one of")
    assert get_table("Figure 3") is get_table("fig3") is TABLES["fig3"]


def test_stand_ins_by_name_hub_id_task_or_kind(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "a", "label": 0}\n')
    (data / "dev.csv").write_text("text,label\na,0\n")
    (data / "test.tsv").write_text("text\tlabel\na\t0\n")
    parsed = parse_stand_ins([f"bert-base={folder}", f"MICROSOFT/deberta-v3-base={folder}", f"llm={folder}",
                              f"sst2={data}", f"Tweet (Offensive)={data}", f"pair={data}"])
    assert set(parsed.by_name) == {"BERT-base", "DeBERTa-V3-base", "SST-2", "Tweet (Offensive)"}
    assert parsed.by_kind == {"llm": str(folder), "pair": str(data)}
    runs = {(r.task.task, r.row): r.config for r in plan(TABLES["1"], "paper", parsed, tmp_path)}
    sst2 = runs[("sst2", "BERT-base")]
    assert (sst2.task, sst2.train_file, sst2.validation_file, sst2.test_file) == (
        None, str(data / "train.jsonl"), str(data / "dev.csv"), str(data / "test.tsv"))
    assert sst2.slm == str(folder) and runs[("sst2", "RoBERTa-base")].slm == "FacebookAI/roberta-base"
    assert runs[("mnli", "BERT-base")].text_pair_column == "text_pair"  # a pair stand-in
    assert runs[("imdb", "BERT-base")].task == "imdb"  # no stand-in: the built-in task
    assert runs[("sst2", "+ PiFi (Llama-3.1-8B)")].layer_artifact == f"{folder}:-1"


def test_bad_stand_ins_are_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="is no model, task or kind"):
        parse_stand_ins([f"gpt-5={tmp_path}"])
    with pytest.raises(ConfigError, match="is not NAME=PATH"):
        parse_stand_ins(["bert-base"])
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        parse_stand_ins([f"bert-base={tmp_path / 'nothing'}"])
    with pytest.raises(ConfigError, match="has no train file"):
        parse_stand_ins([f"sst2={tmp_path}"])
    fails_in_one_line(capsys, ["paper", "5", "--stand-in", "nonsense=x"], "is no model, task or kind")


def test_a_stand_in_llm_of_another_depth_gets_the_same_relative_layers(tmp_path):
    """Figure 3 sweeps positions 1..32 of a 32-layer LLM: on a 4-layer stand-in, the same relative depths."""
    stand_ins = parse_stand_ins([f"llm={tmp_path}"])
    runs = plan(TABLES["fig3"], "smoke", stand_ins, tmp_path, depth_of=lambda source: 4)
    mapped = {r.arm.layers[0] + 1: r.config.layer_artifact for r in runs if r.arm.llm}
    assert mapped == {1: f"{tmp_path}:0", 4: f"{tmp_path}:0", 8: f"{tmp_path}:1", 12: f"{tmp_path}:1",
                      16: f"{tmp_path}:1", 20: f"{tmp_path}:2", 24: f"{tmp_path}:2", 28: f"{tmp_path}:3",
                      32: f"{tmp_path}:3"}
    last = plan(TABLES["14"], "smoke", stand_ins, tmp_path, depth_of=lambda source: 4)
    two = [r.config.layer_artifact for r in last if "2 layers" in r.row]
    assert two and all(a == [f"{tmp_path}:-2", f"{tmp_path}:-1"] for a in two)  # negative indices stay as they are
    assert all(str(r.config.layer_artifact).endswith(":-1") for r in last if r.row == "+ PiFi (Llama-3.1-70B)")


def test_smoke_scale_shrinks_every_run(tmp_path):
    runs = grid(TABLES["2"], "smoke", output_dir=tmp_path)
    smoke = SCALES["smoke"]
    for run in runs:
        assert run.config.epochs == 1 and run.config.max_train_samples == smoke.options["max_train_samples"]
        assert run.config.seeds == 2 and run.config.num_beams == 1
    assert grid(TABLES["2"], "smoke", output_dir=tmp_path, seeds=1)[0].config.seeds == 1


def test_the_paper_numbers_are_typed_in_once_with_their_table_and_row():
    numbers = paper_numbers()
    assert len(numbers) > 800
    assert paper_value("1", "BERT-base", "BERT-base", "SST-2", "accuracy").value == "89.41"
    assert paper_value("1", "DeBERTa-V3-base", "+ PiFi (Llama-3.1-8B)", "SQuAD", "em").value == "69.87"
    assert paper_value("12", "BERT-base", "+ PiFi (Llama-3.1-8B-Instruct)", "SST-2", "p_value").value == "0.7352"
    assert paper_value("3", "BERT-base", "+ PiFi (Llama-3.1-8B)", "IMDB", "accuracy", test="Tweet (Sentiment)"
                       ).value == "83.68"
    assert paper_value("fig3", "T5-base", "+ PiFi (Llama-3.1-8B, layer 12)", "Multi30K", "bleu", layer=12
                       ).value == "0.4361"  # the authors' logs (REFERENCE.md: 0.436 vs the last layer's 0.400)
    assert {n.metric for n in numbers} <= set(METRICS) | {"p_value"}
    for n in numbers:  # every row names a table, a row and (but for cost tables) a task of that table
        table = TABLES[n.table]
        assert n.row and (n.task in (*table.tasks, "Average") or table.commands), n


def _table_blocks(text: str) -> dict[str, str]:
    """Table N -> the text between the previous table's caption and its own (where its cells are)."""
    blocks, start = {}, 0
    for match in re.finditer(r"^Table (\d+): ", text, re.M):
        blocks[match.group(1)] = text[start:match.start()]
        start = match.end()
    return blocks


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper's text is not on this machine")
def test_every_paper_number_is_in_its_table_in_the_paper_text():
    text = PAPER.read_text(encoding="utf-8")
    blocks = _table_blocks(text)
    assert len(blocks) == 20
    for n in paper_numbers():
        if n.source:  # not from the paper's text (Figure 3: the authors' logs)
            assert "khyun8072/PiFi" in n.source
            continue
        cells = re.findall(r"-?\d+\.\d+|-?\d+", re.sub(r"<[^>]+>", " ", blocks[n.table]))
        assert (n.printed or n.value) in cells, (n.table, n.row, n.task, n.metric, n.value)


def test_render_with_no_runs_shows_the_papers_numbers_and_deltas(tmp_path):
    table = TABLES["19"]
    text = render(table, grid(table, output_dir=tmp_path)).text()
    assert "0 of 100 seeds finished" in text
    assert "| BERT-base | BERT-base | accuracy | - / 89.41 | - / 85.10 |" in text
    assert "Δ accuracy vs BERT-base-10% (p) | - / +2.64 | - / +1.80 | - / +5.81 | - / +3.24 | - / +2.06 |" in text
    csv_text = render(table, grid(table, output_dir=tmp_path)).text("csv")
    assert csv_text.splitlines()[0].startswith("table,SLM,row,metric,SST-2")
    t12 = render(TABLES["12"], grid(TABLES["12"], output_dir=tmp_path)).text()
    assert "- / +0.48 (p 0.7352)" in t12  # the paper's own p-value between the two PiFi arms


def test_listing_and_printing_import_no_torch():
    """`pifi paper` and `pifi paper N` plan and validate every grid without torch (as `pifi --help`)."""
    import subprocess
    import sys

    probe = ("import sys, cli\nfor args in (['paper'], ['paper', '1'], ['paper', 'fig3']):\n"
             "    try:\n        cli.main(args)\n    except SystemExit as e:\n        assert not e.code, e.code\n"
             "print('PROBE', 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "PROBE False", proc.stdout[-500:] + proc.stderr[-2000:]


def test_cost_tables_are_counted_beside_the_papers_numbers(capsys):
    """Tables 16 and 20 train nothing: `--run` counts each configuration the paper lists from the typed-in
    configs (no download) and lays it beside the paper's number."""
    code, out, err = run_cli(capsys, "paper", "16", "--run")
    assert code == 0, err
    assert "| BERT-base | BERT-base | GFLOPs | 272.14 / 272.12 | +0.02 |" in out
    assert "| + PiFi (Llama-3.1-8B) | GFLOPs | 279.32 / 279.3 | +0.02 |" in out
    code, out, err = run_cli(capsys, "paper", "20", "--report", "--format", "csv")
    assert code == 0, err
    rows = [line.split(",") for line in out.splitlines()[1:]]
    assert len(rows) == sum(1 for n in paper_numbers() if n.table == "20")
    exact = [r for r in rows if float(r[-1]) == 0.0]
    # every count is the paper's but the L_in/L_out of the three LLMs whose hidden size is not 4096 (the paper
    # prints Llama's 3.146 for them)
    assert {(r[2], r[3]) for r in rows if r not in exact} == {("+ PiFi (Qwen2-7B)", "L_in params (M)"),
                                                             ("+ PiFi (Qwen2-7B)", "L_out params (M)"),
                                                             ("+ PiFi (Gemma-2-9B)", "L_in params (M)"),
                                                             ("+ PiFi (Gemma-2-9B)", "L_out params (M)"),
                                                             ("+ PiFi (Falcon-7B)", "L_in params (M)"),
                                                             ("+ PiFi (Falcon-7B)", "L_out params (M)")}
