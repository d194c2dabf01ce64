"""`pifi paper N --run`: every runnable table's grid on tiny local stand-ins, resumable, on 2 CPU workers and
through submitit's local and debug executors (no Slurm cluster here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_runner import fails_in_one_line, run_cli
from pifi_extract.errors import ConfigError
from pifi_train import run_files
from pifi_train.paper import TABLES, SlurmOptions, grid, render, run_grid, status, table_keys
from pifi_train.paper.execute import PARTIAL, extract_layers, job_state, jobs_of, run_job
from pifi_train.paper.grid import Scale, Table
from pifi_train.paper.launch import _worker_init
from pifi_train.paper.tables import PIFI, base
from seq2seq_fixtures import copy_rows, make_tiny_seq2seq
from tiny_models import make_tiny_model
from train_fixtures import (make_tiny_bert, make_tiny_decoder_slm, qa_rows, synthetic_rows, tokenizer_for,
                            write_jsonl)

# the tables `pifi paper N --run` does not train (pifi cost computes 16 and 20; 17 needs ZeroGen's data)
WAITING = {"16", "17", "20"}  # 16, 20: pifi cost; 17: ZeroGen's data


def _data(folder: Path, rows) -> Path:  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True)
    for k, (split, n) in enumerate([("train", 16), ("validation", 8), ("test", 8)]):
        write_jsonl(folder / f"{split}.jsonl", rows(n, k))
    return folder


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> list[str]:
    """Every kind of name the paper uses, mapped to a tiny local stand-in (models and data written here)."""
    root = tmp_path_factory.mktemp("stand_ins")
    pair = lambda n, s: [{"text": r["text"], "text_pair": r["text2"], "label": r["label"]}  # noqa: E731
                         for r in synthetic_rows(n, s, pair=True)]
    generation = lambda n, s: [{"source": r["src"], "target": r["tgt"]} for r in copy_rows(n, s)]  # noqa: E731
    llm = make_tiny_model("llama", root / "llm", num_layers=4)
    tokenizer_for(llm).save_pretrained(llm)  # Table 15's --method llm reads the LLM's own embedding rows
    return [f"encoder={make_tiny_bert(root / 'bert')}", f"decoder={make_tiny_decoder_slm(root / 'decoder')}",
            f"seq2seq={make_tiny_seq2seq('bart', root / 'bart')}",
            f"llm={llm}",
            f"classification={_data(root / 'cls', synthetic_rows)}", f"pair={_data(root / 'pair', pair)}",
            f"qa={_data(root / 'qa', qa_rows)}", f"generation={_data(root / 'gen', generation)}"]


def _args(stand_ins: list[str]) -> list[str]:
    return [word for pair in stand_ins for word in ("--stand-in", pair)]


def test_smoke_runs_and_renders_every_table_pifi_can_run(stand_ins, tmp_path, capsys, train_env):
    """`pifi paper N --run --scale smoke` on tiny stand-ins, for every table and figure that needs nothing pifi
    lacks: every cell gets pifi's number beside the paper's; a second call trains nothing."""
    out = tmp_path / "runs"
    ran = []
    for key in table_keys():
        runs = grid(TABLES[key], "smoke", stand_ins, out, seeds=1)
        if not status(TABLES[key], runs).runnable:
            assert key in WAITING, key
            continue
        code, text, err = run_cli(capsys, "paper", key, "--run", "--scale", "smoke", "--seeds", "1",
                                  "--output-dir", str(out), "-q", *_args(stand_ins))
        assert code == 0, err
        assert "failed" not in text.splitlines()[0], text
        table_lines = [line for line in text.splitlines() if line.startswith("| ") and " / " in line
                       and "not computed in these runs" not in line]  # smoke: no METEOR, BERTScore, BARTScore
        assert table_lines and not any("| - /" in line for line in table_lines), text  # every run rendered
        ran.append(key)
    assert set(table_keys()) - set(ran) <= WAITING
    assert {"1", "2", "3", "4", "fig2", "fig3"} <= set(ran)  # stand-ins make the planned tasks of 3 and 4 runnable
    assert (out / "fig3-llama-3.1-8b.png").is_file()
    code, text, _ = run_cli(capsys, "paper", "5", "--run", "--scale", "smoke", "--seeds", "1", "--output-dir",
                            str(out), "-q", *_args(stand_ins))
    assert code == 0 and text.startswith("Table 5: 20 skipped\n")
    # the folders are the grid's, shared: Table 5's base and PiFi runs are Table 1's
    assert json.loads((out / "bert-base" / "sst2" / "base" / "seed-2023" / "config.json").read_text())[
        "options"]["max_train_samples"] == 8


def test_an_interrupted_seed_continues_and_a_finished_one_is_skipped(stand_ins, tmp_path, train_env):
    table = Table("t", "test", "-", ("BERT-base",), ("SST-2",), (base(), PIFI), seeds=1)
    runs = grid(table, "smoke", stand_ins, tmp_path, seeds=1)
    outcome = run_grid(table, runs, launcher="serial")
    assert outcome.count("trained") == 2
    pifi_run = next(r for r in runs if r.arm is PIFI)
    (job,) = jobs_of([pifi_run], extract_layers([pifi_run]))  # from the cache: extracted by run_grid
    longer = type(job)(job.name, {**job.config, "epochs": 2, "output_dir": str(tmp_path / "longer")})

    def stop_after_first_epoch(event):  # type: ignore[no-untyped-def]
        if event.kind == "epoch_end":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(longer, stop_after_first_epoch)
    assert job_state(longer.dir, 2) == PARTIAL
    first = json.loads((longer.dir / run_files.METRICS).read_text())["epochs"][0]
    assert run_job(longer).status == "resumed"
    metrics = json.loads((longer.dir / run_files.METRICS).read_text())
    assert metrics["complete"] and len(metrics["epochs"]) == 2 and metrics["epochs"][0] == first
    assert run_job(longer).status == "skipped"
    # a folder holding a run of another scale is refused, never reused
    other = Scale("other", {"epochs": 1, "max_train_samples": 12, "batch_size": 2, "max_length": 32})
    with pytest.raises(ConfigError, match="holds a run with another max-train-samples"):
        run_grid(table, grid(table, other, stand_ins, tmp_path, seeds=1))


def test_local_launcher_two_cpu_workers_gives_the_serial_results(stand_ins, tmp_path, train_env):
    table = TABLES["11"]
    serial = grid(table, "smoke", stand_ins, tmp_path / "serial", seeds=1)
    local = grid(table, "smoke", stand_ins, tmp_path / "local", seeds=1)
    assert run_grid(table, serial).count("trained") == 9
    outcome = run_grid(table, local, launcher="local", workers=2)
    assert outcome.count("trained") == 9 and not outcome.failed
    for a, b in zip(serial, local):
        for seed in a.seeds:
            metrics = [json.loads((r.dir / f"seed-{seed}" / run_files.METRICS).read_text())["final"]["test"]
                       for r in (a, b)]
            assert metrics[0] == metrics[1]
    text = render(table, local, scale="smoke").text()
    assert "9 of 9 seeds finished" in text
    assert run_grid(table, local, launcher="local", workers=2).count("skipped") == 9


def test_each_local_worker_takes_its_own_gpu(monkeypatch):
    import queue

    devices: queue.Queue = queue.Queue()
    devices.put("3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    _worker_init(devices, None)
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_slurm_launcher_through_submitits_debug_and_local_executors(stand_ins, tmp_path, train_env):
    pytest.importorskip("submitit")
    table = Table("t", "test", "-", ("BERT-base",), ("SST-2",), (base(), PIFI), seeds=1)
    runs = grid(table, "smoke", stand_ins, tmp_path / "debug", seeds=1)
    debug = SlurmOptions(partition="gpu", gpus=0, cpus=1, time_min=5, cluster="debug", wait=True)
    outcome = run_grid(table, runs, launcher="slurm", slurm=debug)
    assert outcome.count("trained") == 2, outcome.results
    assert "2 of 2 seeds finished" in render(table, runs, scale="smoke").text()
    assert (tmp_path / "debug" / "slurm").is_dir()
    assert run_grid(table, runs, launcher="slurm", slurm=debug).count("skipped") == 2
    # without --wait the jobs are only submitted (the debug executor runs one only when asked for its result)
    later = grid(table, "smoke", stand_ins, tmp_path / "later", seeds=1)
    submitted = run_grid(table, later, launcher="slurm", slurm=SlurmOptions(cluster="debug", gpus=0))
    assert submitted.count("submitted") == 2 and re.match(r"job \S+", submitted.results[0].error or "")
    assert "0 of 2 seeds finished" in render(table, later, scale="smoke").text()
    # submitit's local executor: a separate process per job, as on a cluster (the job is pickled across)
    runs = grid(table, "smoke", stand_ins, tmp_path / "local", seeds=1)
    local = SlurmOptions(gpus=0, cpus=1, time_min=5, cluster="local", wait=True)
    assert run_grid(table, runs[:1], launcher="slurm", slurm=local).count("trained") == 1
    assert "1 of 2 seeds finished" in render(table, runs, scale="smoke").text()


def test_slurm_params_are_checked(stand_ins, tmp_path, capsys):
    pytest.importorskip("submitit")
    fails_in_one_line(capsys, ["paper", "11", "--run", "--launcher", "slurm", "--slurm-param", "account",
                               "--output-dir", str(tmp_path), *_args(stand_ins)], "--slurm-param 'account' is not KEY=VALUE")
