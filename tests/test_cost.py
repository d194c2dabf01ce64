"""`pifi cost`: parameters per module (the paper's Table 20 from typed-in configs), FLOPs counted on the meta device
(equal to a count on real tensors, and to hand-computed matmuls), the paper's Table 16 reproduced without a
download, every family on tiny models (configurations and finished runs), and one-line refusals."""

from __future__ import annotations

import json

import pytest

from cli_runner import fails_in_one_line, run_cli
from family_fixtures import FAMILIES, options_for
from pifi_train.config import TrainConfig
from pifi_train.cost import CostOptions, measure, target_from_config, target_from_run
from pifi_train.runner import run_training

M = 1e6
# the paper's Table 20 (millions): SLMs with PiFi (Llama-3.1-8B) ...
TABLE_20_SLMS = {"bert-base-uncased": 109.482, "roberta-base": 124.646, "electra-base-discriminator": 108.892,
                 "deberta-base": 138.602, "deberta-v3-base": 183.832}
TABLE_20_SEQ2SEQ = {"t5-base": 222.904, "bart-base": 139.420}
# ... and BERT-base with other LLMs: (layer, L_in) where the paper's L_in is arithmetic (its 3.146 for Qwen2-7B,
# Gemma-2-9B and Falcon-7B is BERT's 768 x 4096, not their hidden sizes 3584 and 4544)
TABLE_20_LLMS = {"Llama-3.1-8B": (218.112, 3.146), "Qwen2-0.5B": (14.912, 0.688), "Qwen2-1.5B": (46.798, 1.180),
                 "Qwen2-7B": (233.058, None), "gemma-2-9b": (198.195, None), "falcon-7b": (207.070, None),
                 "Llama-3.1-70B": (855.654, 6.291), "Mistral-7B-v0.3": (218.112, 3.146)}


def _parameters(slm: str, llm: str, task_type: str = "classification") -> dict[str, int]:
    from pifi_train.cost_build import build_arm
    from pifi_train.cost_count import parameters_by_module

    target = target_from_config(slm, llm=llm, task_type=task_type)
    return parameters_by_module(build_arm(target, "pifi"), lambda name: "final_norm" not in name)


@pytest.mark.parametrize("slm", list(TABLE_20_SLMS))
def test_table_20_slm_parameters_from_known_configs(slm):
    sizes = _parameters(slm, "Llama-3.1-8B")
    assert round(sizes["slm"] / M, 3) == TABLE_20_SLMS[slm]
    assert round(sizes["layer"] / M, 3) == 218.112 and round(sizes["l_in"] / M, 3) == 3.146
    assert round(sizes["head"] / M, 3) == 0.592


@pytest.mark.parametrize("slm", list(TABLE_20_SEQ2SEQ))
def test_table_20_seq2seq_parameters(slm):
    sizes = _parameters(slm, "Llama-3.1-8B", "seq2seq")
    assert round(sizes["slm"] / M, 3) == TABLE_20_SEQ2SEQ[slm] and sizes["head"] == 0  # the LM head is the SLM's
    assert round(sizes["l_in"] / M, 3) == round(sizes["l_out"] / M, 3) == 3.146


@pytest.mark.parametrize("llm", list(TABLE_20_LLMS))
def test_table_20_layer_parameters_from_known_configs(llm):
    layer, l_in = TABLE_20_LLMS[llm]
    sizes = _parameters("bert-base-uncased", llm)
    assert round(sizes["layer"] / M, 3) == layer
    assert l_in is None or round(sizes["l_in"] / M, 3) == l_in


def test_the_papers_table_16_counted_without_a_download(capsys, monkeypatch):
    """BERT-base + the last Llama-3.1-8B layer, 32 inputs of 100 tokens (the paper's batch and max length): fvcore's
    unit gives 272.14 / 279.32 G (paper: 272.12 / 279.3; pifi's count includes the 2-class head, 0.019 G)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, _ = run_cli(capsys, "cost", "--slm", "bert-base-uncased", "--llm", "Llama-3.1-8B", "--json")
    assert code == 0
    report = json.loads(out)
    base, pifi = (arm["count"] for arm in report["arms"])
    assert (report["batch_size"], report["seq_len"]) == (32, 100)
    assert base["paper_macs"] / 1e9 == pytest.approx(272.12, abs=0.03)
    assert pifi["paper_macs"] / 1e9 == pytest.approx(279.3, abs=0.03)
    assert pifi["paper_macs"] / base["paper_macs"] - 1 == pytest.approx(0.026, abs=0.001)  # the paper's +2.6 %
    assert pifi["flops"] / base["flops"] - 1 == pytest.approx(0.026, abs=0.001)  # torch's count, attention included
    # every multiply-add of the plug by hand: L_in, the layer's projections at length 1, L_out (x 2 FLOPs each)
    plug = 32 * (768 * 4096 + 4096 * (4096 + 1024 + 1024 + 4096) + 3 * 4096 * 14336 + 4096 * 768)
    assert pifi["flops"] - base["flops"] == pytest.approx(2 * plug, rel=1e-4)
    assert pifi["module_flops"]["l_in"] == 2 * 32 * 768 * 4096 and pifi["parameters"]["layer"] == 218_112_000
    assert pifi["weight_bytes"] - base["weight_bytes"] == 4 * (218_112_000 + 2 * 3_145_728)  # fp32
    assert report["arms"][0]["latency_ms"] is None  # no weights: counted, not timed
    code, out, _ = run_cli(capsys, "cost", "--slm", "bert-base-uncased", "--llm", "Llama-3.1-8B")
    assert "272.14" in out and "279.32" in out and "+2.64 %" in out and "base and pifi: no weights at hand" in out


# ---- tiny models of every family --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_runs(family_runs, tmp_path_factory):
    """One finished PiFi run of each family."""
    from train_fixtures import offline_single_thread

    root = tmp_path_factory.mktemp("cost_runs")
    with offline_single_thread():
        return {family: run_training(TrainConfig(**options_for(family_runs, family, epochs=1,
                                                               output_dir=str(root / family))))[0].run_dir
                for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_meta_counts_equal_counts_on_real_tensors(family, tiny_runs, train_env):
    """The meta-device count (no weights) is the count of the same forward on real CPU tensors, attention included."""
    from pifi_train.cost_build import _inputs, build_arm
    from pifi_train.cost_count import count_forward

    target = target_from_run(tiny_runs[family])
    options = CostOptions(batch_size=3, seq_len=12, target_len=5)
    for arm in ("base", "pifi"):
        meta = count_forward(build_arm(target, arm, "meta"), _inputs(target, options, "meta"))
        real = count_forward(build_arm(target, arm, "cpu"), _inputs(target, options, "cpu"))
        assert (meta.flops, meta.attention_flops, meta.paper_macs) == (real.flops, real.attention_flops, real.paper_macs)
        assert meta.flops > 0 and meta.attention_flops > 0 and sum(meta.module_flops.values()) == meta.flops
        assert meta.parameters == real.parameters and meta.activation_bytes > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_cost_of_a_finished_run_in_every_family(family, tiny_runs, train_env, capsys):
    from pifi_extract.artifact import read_artifact

    run = tiny_runs[family]
    record = json.loads((run / "config.json").read_text())
    report = measure(target_from_run(run), CostOptions(batch_size=4, seq_len=12, target_len=6, repeats=2))
    base, pifi = report.arms
    assert (base.arm, pifi.arm) == ("base", "pifi") and report.family == family
    assert pifi.timed_with == "the run's weights" and base.timed_with == "random weights"
    assert base.latency_ms > 0 and pifi.latency_ms > 0
    hidden = record["slm"]["hidden_size"]
    layer_hidden = int(read_artifact(record["layer"]["path"]).config["hidden_size"])
    assert pifi.count.parameters["l_in"] == pifi.count.parameters["l_out"] == hidden * layer_hidden
    assert base.count.parameters["slm"] == pifi.count.parameters["slm"] and base.count.parameters["l_in"] == 0
    # the run's own counts of trainable + frozen parameters agree (the frozen final norm is stored, not used)
    assert pifi.count.parameters["layer"] <= record["parameters"]["frozen"]
    tokens = 4 * 12  # every token through L_in, except classification's CLS plug: one vector per input
    assert pifi.count.module_flops["l_in"] == 2 * hidden * layer_hidden * (4 if family == "classification" else tokens)
    code, out, _ = run_cli(capsys, "cost", str(run), "--batch-size", "4", "--seq-len", "12", "--repeats", "1")
    assert code == 0 and "pifi" in out and "the run's weights" in out and "L_in (M)" in out


def test_a_configuration_of_tiny_models_with_weights_is_timed(assets, capsys, train_env):
    code, out, _ = run_cli(capsys, "cost", "--slm", str(assets["bert"]), "--layer-artifact", str(assets["artifact"]),
                           "--seq-len", "8", "--batch-size", "2", "--repeats", "1", "--json")
    assert code == 0
    report = json.loads(out)
    assert [a["timed_with"] for a in report["arms"]] == ["the given weights (a random head)"] * 2
    code, out, _ = run_cli(capsys, "cost", "--slm", str(assets["bert"]), "--llm", str(assets["artifact"].parent / "llm"),
                           "--task-type", "qa", "--seq-len", "8", "--json")
    report = json.loads(out)
    assert code == 0 and report["arms"][1]["latency_ms"] is None and report["notes"]  # the LLM by config: counted only


def test_seq2seq_counts_one_teacher_forced_forward(family_runs, capsys):
    slm = family_runs["seq2seq"]["slm"]
    flops = {}
    for target_len in (4, 8):
        code, out, _ = run_cli(capsys, "cost", "--slm", slm, "--task-type", "seq2seq", "--seq-len", "8",
                               "--target-len", str(target_len), "--batch-size", "2", "--json")
        assert code == 0
        [base] = json.loads(out)["arms"]  # no layer given: the base arm only
        flops[target_len] = base["count"]["flops"]
    assert flops[4] < flops[8] < 2 * flops[4] + 1  # the decoder grows with the target, the encoder does not


@pytest.mark.parametrize("args, says", [
    ([], "takes a run directory or --slm"),
    (["--slm", "bert-humongous"], "nor a model pifi knows the config of"),
    (["--slm", "bert-base-uncased", "--llm", "gpt-7"], "--llm gpt-7: not a local folder"),
    (["--slm", "bert-base-uncased", "--seq-len", "600"], "the SLM has 512 positions"),
    (["--slm", "t5-base"], "is an encoder-decoder model, and this is a classification configuration"),
    (["--slm", "bert-base-uncased", "--task-type", "seq2seq"], "is not an encoder-decoder model"),
    (["--slm", "bert-base-uncased", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--slm", "bert-base-uncased", "--dtype", "int8"], "--dtype must be one of"),
    (["--slm", "bert-base-uncased", "--num-labels", "1"], "--num-labels must be at least 2"),
])
def test_cost_refusals_are_one_line(args, says, capsys):
    fails_in_one_line(capsys, ["cost", *args], says)


def test_a_run_with_configuration_options_is_refused(tiny_runs, capsys):
    fails_in_one_line(capsys, ["cost", str(tiny_runs["qa"]), "--llm", "Llama-3.1-8B"], "a run brings its own")
