"""A newcomer's first hour (issue 24): markup printed as written, `pifi paper` matching the README, artifact
references in the checkpoint's own dtype, and the overall ETA of several runs."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from cli_runner import run_cli
from layer_cache import get_or_extract, resolve_reference
from pifi_train.eta import RunsEta, WorkPlan, format_eta

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_paper_18_and_help_texts_keep_their_brackets(capsys):
    code, out, _ = run_cli(capsys, "paper", "18")
    assert code == 0 and out.splitlines()[1] == "# Needs pifi[lora]."
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0 and "pifi[lora]" in out and "(needs pifi)" not in out
    code, out, _ = run_cli(capsys, "predict", "--help")
    assert code == 0 and "hf://ORG/REPO[@REV]" in out


def test_every_table_the_readme_names_is_a_pifi_paper_table():
    from pifi_train.paper import table_keys

    named = set(re.findall(r"^### Reproducing Table (\d+)", README, re.M))
    section = README.split("\n## Reproducing the paper", 1)[1].split("\n## ", 1)[0]
    named |= set(re.findall(r"^\| Table (\d+): ", section, re.M))
    named |= {f"fig{n}" for n in re.findall(r"^\| Figure (\d+): ", section, re.M)}
    assert {str(n) for n in range(1, 21)} | {"fig2", "fig3"} == named  # the README's table lists every one
    assert named <= set(table_keys())
    for key in named:  # and each row's command is that table's
        assert re.search(rf"^\| (Table|Figure) {key.removeprefix('fig')}: [^|]*\| `pifi paper {key}[ `]", section, re.M), key


def test_the_checkpoint_dtype_names_the_keep_artifact(tmp_path, llama_dir, monkeypatch):
    """`--dtype fp32` of an fp32 checkpoint is the keep artifact (a cache hit): `:fp32` must name it too."""
    cache_dir = tmp_path / "cache"
    keep = get_or_extract(str(llama_dir), -1, cache_dir=cache_dir)
    assert get_or_extract(str(llama_dir), -1, dtype="fp32", cache_dir=cache_dir).hit  # the tiny model is fp32
    monkeypatch.chdir(llama_dir.parent)
    for ref in (f"./{llama_dir.name}:-1:fp32", f"{llama_dir}:3:fp32", f"./{llama_dir.name}:-1:keep"):
        assert resolve_reference(ref, cache_dir=cache_dir).path == keep.path, ref
    with pytest.raises(Exception, match="no cached artifact matches"):
        resolve_reference(f"./{llama_dir.name}:-1:bf16", cache_dir=cache_dir)


def _event(kind: str, **fields):
    return SimpleNamespace(kind=kind, seed=1, **fields)


def test_overall_eta_moves_through_evaluation():
    """2 runs × 2 epochs × 10 steps of 1 s, 64 validation and 128 test examples evaluated at 0.01 s each."""
    now = [0.0]
    eta = RunsEta(WorkPlan(runs=2, epochs=2, steps_per_epoch=10, batch_size=32, validation_examples=64,
                           test_examples=128), clock=lambda: now[0])
    assert eta.snapshot().remaining is None  # nothing timed yet
    seen = []
    for _run in range(2):
        eta.update(_event("run_start"))
        now[0] += 2.0  # setup
        for epoch in (1, 2):
            eta.update(_event("epoch_start", epoch=epoch, steps=10))
            for step in range(1, 11):
                now[0] += 1.0
                eta.update(_event("step", step=step, steps=10))
                seen.append(eta.snapshot())
            for _ in range(4):  # evaluation: no events, yet the share done grows and the time left shrinks
                now[0] += 0.16
                seen.append(eta.snapshot())
            eta.update(_event("epoch_end", epoch=epoch, epochs=2))
        for _ in range(4):
            now[0] += 0.32
            seen.append(eta.snapshot())
        eta.update(_event("run_end"))
    total = now[0]
    fractions = [s.fraction for s in seen]
    assert fractions == sorted(fractions) and eta.snapshot().fraction == pytest.approx(1.0)
    assert [s.phase for s in seen[10:14]] == ["evaluating"] * 4
    assert seen[11].fraction > seen[10].fraction
    halfway = seen[len(seen) // 2]  # once every speed is measured, the estimate is the real time left
    assert halfway.remaining == pytest.approx(total - halfway.elapsed, rel=0.05)
    assert format_eta(halfway).startswith(f"{100 * halfway.fraction:.0f}% · 0:") and "left" in format_eta(halfway)


@pytest.mark.parametrize("ranks", [[0, 2, 1, 4, 3], [1, 0, 3, 2, 5, 4], [0, 1, 2, 3], [2, 0, 1, 3, 5, 4, 6],
                                   [3, 1, 0, 2, 4, 7, 5, 6], [1, 0]])
def test_spearman_p_value_is_scipys_exact_permutation_test(ranks):
    """`pifi sweep` says when Spearman's rho over its layers is within noise (2 layers: always ±1, p = 1)."""
    np = pytest.importorskip("numpy")
    stats = pytest.importorskip("scipy.stats")
    from pifi_train.stats import spearman_p_value

    if len(ranks) < 3:  # two layers always agree or disagree perfectly: no evidence either way
        assert spearman_p_value(1.0, 2) == spearman_p_value(-1.0, 2) == 1.0
        return
    x, y = np.arange(len(ranks)), np.array(ranks)
    rho = stats.spearmanr(x, y).statistic
    exact = stats.permutation_test((y,), lambda v: stats.spearmanr(x, v).statistic, permutation_type="pairings",
                                   n_resamples=np.inf, alternative="two-sided").pvalue
    assert spearman_p_value(rho, len(ranks)) == pytest.approx(exact)


def test_select_says_when_its_ranking_is_within_noise():
    from pifi_cli.select_cmds import _noise_note

    rows = [{"probe": p} for p in (0.70, 0.74, 0.75, 0.60)]
    note = _noise_note(rows, 40)  # SE ≈ 6.8 points: three layers within 2 SE of the best
    assert note and "±6.8 points" in note and "3 of 4 layers" in note and "within noise" in note
    assert _noise_note(rows, 100_000) is None  # tight: the best stands alone
