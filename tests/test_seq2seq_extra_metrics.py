"""METEOR, BERTScore and BARTScore (the paper's Table 2 beside BLEU/ROUGE), on tiny local models: checked
against their reference implementations (nltk's meteor_score, the bert-score package, transformers' own
loss) on crafted sentences, and in a tiny seq2seq run. Nothing downloads."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from cli_runner import fails_in_one_line
from family_fixtures import cli_args, options_for
from pifi_extract.errors import ConfigError, UnsupportedModelError
from pifi_train.config import TrainConfig
from pifi_train.families.seq2seq import extra_metrics, runtime
from pifi_train.families.seq2seq.extra_metrics import bertscore_layer, check_extra_options, meteor_scores
from pifi_train.families.seq2seq.model_scores import BartScorer, BertScorer
from seq2seq_fixtures import make_tiny_seq2seq
from train_fixtures import make_tiny_bert

CPU = torch.device("cpu")
PAIRS = [("good movie w1 w2", "good movie w2"), ("bad plot", "w3 plot bad w4 w5"), ("w6", "w6"),
         ("movie good good", "good movie"), ("w7 w8 w9 plot", "w10 w11")]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A tiny random BERT whose tokenizer says its length (bert-score cannot truncate to an unset one)."""
    from transformers import AutoTokenizer

    folder = make_tiny_bert(tmp_path_factory.mktemp("bertscore") / "bert", seed=3)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory):
    return make_tiny_seq2seq("bart", tmp_path_factory.mktemp("bartscore") / "bart", seed=4)


# ---- BERTScore ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [1, 2])
def test_bertscore_matches_the_bert_score_package(tiny_bert, layer):
    bert_score = pytest.importorskip("bert_score")
    reference = bert_score.BERTScorer(model_type=str(tiny_bert), num_layers=layer, device="cpu")
    mine = BertScorer(str(tiny_bert), layer, CPU).score([h for h, _ in PAIRS], [r for _, r in PAIRS])
    for (hyp, ref), (p, r, f) in zip(PAIRS, mine):
        P, R, F = reference.score([hyp], [ref])  # one pair at a time, as the authors scored
        assert (p, r, f) == pytest.approx((P.item(), R.item(), F.item()), abs=1e-5)


def test_bertscore_by_hand(tiny_bert):
    scorer = BertScorer(str(tiny_bert), 2, CPU)
    [(p, r, f), empty, (p2, r2, f2)] = scorer.score(["good movie", "", "good"], ["good movie", "plot", "good movie"])
    assert (p, r, f) == pytest.approx((1.0, 1.0, 1.0), abs=1e-5)  # a sentence matches itself exactly
    assert empty == (0.0, 0.0, 0.0)  # an empty candidate scores 0, as bert-score
    assert p2 == pytest.approx(1.0, abs=1e-5) and r2 < 1.0 and f2 == pytest.approx(2 * p2 * r2 / (p2 + r2))


def test_bertscore_layer_defaults_and_refusals(tiny_bert):
    assert bertscore_layer("google-bert/bert-base-multilingual-cased", None) == 9  # the paper's model
    assert bertscore_layer("roberta-large", None) == 17 and bertscore_layer("anything", 4) == 4
    with pytest.raises(ConfigError, match="pass --bertscore-layer"):
        bertscore_layer(str(tiny_bert), None)
    with pytest.raises(ConfigError, match="has 2 layers"):
        BertScorer(str(tiny_bert), 3, CPU)


def test_bertscore_refuses_an_encoder_decoder(tiny_bart):
    with pytest.raises(UnsupportedModelError, match="--bertscore-model .* is an encoder-decoder"):
        BertScorer(str(tiny_bart), 1, CPU)


# ---- BARTScore ----------------------------------------------------------------------------------------


def test_bartscore_is_the_mean_target_log_likelihood_as_transformers_computes_it(tiny_bart):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    scorer = BartScorer(str(tiny_bart), CPU)
    sources, targets = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9"], ["w1 w2", "w4 w4 w4 w4", "w9"]
    scores = scorer.score(sources, targets, batch_size=2)  # padded batches
    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(tiny_bart).eval(), AutoTokenizer.from_pretrained(tiny_bart)
    for src, tgt, score in zip(sources, targets, scores):
        with torch.no_grad():  # transformers' own cross-entropy of the target tokens, one pair, no padding
            labels = tokenizer(tgt, return_tensors="pt").input_ids
            loss = model(**tokenizer(src, return_tensors="pt"), labels=labels).loss
        assert score == pytest.approx(-loss.item(), abs=1e-5)


def test_bartscore_directions(tiny_bart):
    scorer = BartScorer(str(tiny_bart), CPU)
    hyps, refs, srcs = ["w1 w2"], ["w1 w3 w3"], ["w5 w6"]
    precision, recall = scorer.score(refs, hyps), scorer.score(hyps, refs)
    assert scorer.directed(hyps, refs, srcs, "ref-hyp") == precision
    assert scorer.directed(hyps, refs, srcs, "hyp-ref") == recall != precision
    assert scorer.directed(hyps, refs, srcs, "f") == pytest.approx([(precision[0] + recall[0]) / 2])
    assert scorer.directed(hyps, refs, srcs, "src-hyp") == scorer.score(srcs, hyps)


def test_bartscore_refuses_an_encoder(tiny_bert):
    with pytest.raises(UnsupportedModelError, match="--bartscore-model .* is not an encoder-decoder"):
        BartScorer(str(tiny_bert), CPU)


# ---- METEOR -------------------------------------------------------------------------------------------


class CraftedWordNet:
    """A two-entry WordNet: nltk's METEOR asks it only for the lemmas of a word's synsets."""

    SYNONYMS = {"hound": ["hound", "dog"], "dog": ["dog", "hound"]}  # nltk looks up Porter stems: these stay

    def synsets(self, word):
        names = self.SYNONYMS.get(word, [])
        lemmas = [SimpleNamespace(name=lambda n=n: n) for n in names]
        return [SimpleNamespace(lemmas=lambda: lemmas, lemma_names=lambda: names)] if names else []


def test_meteor_by_hand_and_against_nltk():
    from nltk.translate.meteor_score import meteor_score

    wordnet = CraftedWordNet()
    [same, synonym, stem, empty] = meteor_scores(
        ["the cat sat on the mat.", "the hound sat", "cats running", ""],
        ["the cat sat on the mat.", "the dog sat", "cat runs", "the cat"], wordnet=wordnet)
    # 7 matched tokens ("." is one) in one chunk: Fmean 1, penalty 0.5 * (1/7)^3
    assert same == pytest.approx(1 - 0.5 * (1 / 7) ** 3)
    assert synonym == pytest.approx(1 - 0.5 * (1 / 3) ** 3)  # hound ~ dog through the WordNet
    assert stem == pytest.approx(1 - 0.5 * (1 / 2) ** 3)  # Porter stems: cats ~ cat, running ~ runs
    assert stem == meteor_score([["cat", "runs"]], ["cats", "running"], wordnet=wordnet)
    assert empty == 0.0


def test_meteor_without_wordnet_data_is_one_line_naming_the_fix(monkeypatch, tmp_path):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(ConfigError, match="WordNet data") as info:
        meteor_scores(["a"], ["a"])
    assert "nltk.downloader wordnet" in info.value.hint


# ---- options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"bartscore_direction": "up"}, "--bartscore-direction must be one of"),
    ({"bertscore_layer": 3}, "--bertscore-layer needs --bertscore-model"),
    ({"bartscore_direction": "f"}, "--bartscore-direction needs --bartscore-model"),
    ({"bertscore_model": "x", "bertscore_layer": -1}, "--bertscore-layer must be 0 or more"),
])
def test_option_values_are_checked(changes, message):
    with pytest.raises(ConfigError, match=message):
        check_extra_options(TrainConfig(train_file="x", **changes))


# ---- in a run -----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("train_env")
def test_a_seq2seq_run_scores_the_extra_metrics_on_every_split(family_runs, tiny_bert, tmp_path, monkeypatch):
    from pifi_train.runner import run_training

    for module in (extra_metrics, runtime):  # the check before training, and the scoring
        monkeypatch.setattr(module, "load_wordnet", CraftedWordNet)
    slm = family_runs["seq2seq"]["slm"]
    options = options_for(family_runs, "seq2seq", output_dir=str(tmp_path / "run"), meteor=True,
                          bertscore_model=str(tiny_bert), bertscore_layer=1, bartscore_model=slm,
                          bartscore_direction="f")
    [run] = run_training(TrainConfig(**options))
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run.run_dir / "predictions.jsonl").read_text().splitlines()]
    for split, values in (("validation", metrics["final"]["validation"]), ("test", metrics["final"]["test"])):
        mine = [r for r in rows if r["split"] == split]
        for key in ("meteor", "bertscore", "bartscore"):
            assert values[key] == pytest.approx(sum(r[key] for r in mine) / len(mine)), (split, key)
        assert 0 <= values["meteor"] <= 1 and -1 <= values["bertscore"] <= 1 and values["bartscore"] < 0


@pytest.mark.usefixtures("train_env")
def test_meteor_without_wordnet_fails_before_anything_is_written(family_runs, tmp_path, capsys, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "no_data")])
    args = cli_args(options_for(family_runs, "seq2seq", output_dir=str(tmp_path / "run"), meteor=True))
    fails_in_one_line(capsys, args, "--meteor needs nltk's WordNet data")
    assert not (tmp_path / "run").exists()


@pytest.mark.usefixtures("train_env")
@pytest.mark.parametrize("scorer, message", [("nowhere", "--bertscore-model"), ("bert", "has 2 layers")])
def test_a_missing_scoring_model_or_layer_fails_before_anything_is_written(family_runs, tiny_bert, tmp_path, capsys,
                                                                           scorer, message):
    model = str(tiny_bert) if scorer == "bert" else str(tmp_path / "nowhere")
    args = cli_args(options_for(family_runs, "seq2seq", output_dir=str(tmp_path / "run"), bertscore_model=model,
                                bertscore_layer=5))
    fails_in_one_line(capsys, args, message)
    assert not (tmp_path / "run").exists()
