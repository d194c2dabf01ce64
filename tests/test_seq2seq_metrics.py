"""Generation metrics on hand-checked cases."""

from __future__ import annotations

import pytest

from pifi_train.families.seq2seq.metrics import generation_metrics


def test_perfect_match_is_100_everywhere():
    m = generation_metrics(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert m["bleu"] == pytest.approx(100) and m["chrf"] == pytest.approx(100)
    assert m["bleu_avg"] == pytest.approx(1.0)
    assert all(m[k] == pytest.approx(100) for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"))


def test_one_substituted_word_by_hand():
    # hyp "the cat is on the mat" vs ref "the cat sat on the mat" (same length: no brevity penalty)
    # n-gram precisions 5/6, 3/5, 1/4, 0/3 -> cumulative BLEU-1..4 = 5/6, sqrt(1/2), 1/2, 0 (unsmoothed, as nlg-eval)
    m = generation_metrics(["the cat is on the mat"], ["the cat sat on the mat"])
    assert m["bleu_avg"] == pytest.approx((5 / 6 + 0.5 ** 0.5 + 0.5 + 0.0) / 4, abs=1e-6)
    assert m["rouge1"] == pytest.approx(100 * 5 / 6)
    assert m["rouge2"] == pytest.approx(100 * 3 / 5)
    assert m["rougeL"] == pytest.approx(100 * 5 / 6)  # LCS "the cat on the mat"
    assert 0 < m["bleu"] < 100


def test_rouge_stems_and_brevity_penalty():
    m = generation_metrics(["cats running"], ["cat runs"])
    assert m["rouge1"] == pytest.approx(100)  # Porter stemming: cats -> cat, running/runs -> run
    short = generation_metrics(["the cat"], ["the cat sat on the mat"])
    assert short["bleu_avg"] < 0.5  # precision 1 but brevity penalty exp(1 - 6/2)
    assert short["bleu_avg"] == pytest.approx((2.718281828 ** (1 - 3)) * (1 + 1 + 0 + 0) / 4, rel=1e-6)


def test_mismatched_lengths_refused():
    from pifi_extract.errors import ConfigError

    with pytest.raises(ConfigError):
        generation_metrics(["a"], ["a", "b"])


def test_missing_generation_extra_is_one_named_fix(monkeypatch):
    import builtins

    from pifi_extract.errors import ConfigError

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name=name))
                        if name.startswith("sacrebleu") else real_import(name, *a, **k))
    with pytest.raises(ConfigError, match=r"pifi\[generation\]"):
        generation_metrics(["a"], ["a"])
