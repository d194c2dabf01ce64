"""The paper's Table 2 metrics beside BLEU and ROUGE, each asked for by its option: METEOR (``--meteor``),
BERTScore (``--bertscore-model``), BARTScore (``--bartscore-model``). Torch-free: the option checks and METEOR.

METEOR is nltk's ``meteor_score`` (Banerjee & Lavie 2005 with WordNet synonyms, Porter stems, lowercase) on
word/punctuation tokens, averaged over examples. The authors ran nlg-eval's Java METEOR 1.5 (also paraphrase
matches, tuned parameters, one corpus-level score rather than a mean of sentence scores): the numbers differ.
The model-based scores are in :mod:`.model_scores` (torch, transformers only). METEOR's nltk comes with
``pifi[generation]``; its WordNet data does not (``python -m nltk.downloader wordnet``).
"""

from __future__ import annotations

import re
from statistics import fmean
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, UnsupportedModelError

BARTSCORE_DIRECTIONS = ("ref-hyp", "hyp-ref", "f", "src-hyp")
# bert-score 0.3.13's recommended layers (its utils.model2layers) for the encoders one is likely to pick
BERTSCORE_LAYERS = {
    "bert-base-uncased": 9, "bert-large-uncased": 18, "bert-base-multilingual-cased": 9, "roberta-base": 10,
    "roberta-large": 17, "distilbert-base-uncased": 5, "distilbert-base-multilingual-cased": 5,
    "xlm-roberta-base": 9, "xlm-roberta-large": 17, "microsoft/deberta-large-mnli": 18,
    "microsoft/deberta-xlarge-mnli": 40,
}
EXTRA_KEYS = ("meteor", "bertscore", "bartscore")  # what a split's metrics gain (per-example rows too)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def wanted(config: Any) -> tuple[str, ...]:
    """The extra metrics a run asked for, in :data:`EXTRA_KEYS` order."""
    asked = {"meteor": config.meteor, "bertscore": config.bertscore_model, "bartscore": config.bartscore_model}
    return tuple(k for k in EXTRA_KEYS if asked[k])


def bertscore_layer(model: str, layer: int | None) -> int:
    """``--bertscore-layer``, else bert-score's layer for a model it knows (by Hub name, org optional)."""
    if layer is not None:
        return layer
    name = model.rstrip("/")
    for key in (name, name.split("/")[-1]):
        if key in BERTSCORE_LAYERS:
            return BERTSCORE_LAYERS[key]
    raise ConfigError(f"--bertscore-model {model}: no default BERTScore layer for this model",
                      "pass --bertscore-layer N (bert-score's recommended layer for the model)")


def check_bertscore_model(model: str, layer: int | None, config: Any) -> int:
    """The BERTScore layer for ``model`` (its transformers ``config``): an encoder, a layer it has."""
    if getattr(config, "is_encoder_decoder", False):
        raise UnsupportedModelError(f"--bertscore-model {model} is an encoder-decoder model ({config.model_type})",
                                    "BERTScore takes an encoder (BERT, RoBERTa, DeBERTa...)")
    chosen, depth = bertscore_layer(model, layer), getattr(config, "num_hidden_layers", None)
    if depth is not None and chosen > depth:  # 0 is the embeddings
        raise ConfigError(f"--bertscore-layer {chosen}: {model} has {depth} layers",
                          f"pass --bertscore-layer 0..{depth}")
    return chosen


def check_bartscore_model(model: str, config: Any) -> None:
    if not getattr(config, "is_encoder_decoder", False):
        raise UnsupportedModelError(f"--bartscore-model {model} is not an encoder-decoder model ({config.model_type})",
                                    "BARTScore takes a BART (the paper: facebook/bart-large-cnn)")


def check_extra_options(config: Any) -> None:
    """The values of the extra-metric options (cheap; the models load when first scored)."""
    if config.bartscore_direction not in BARTSCORE_DIRECTIONS:
        raise ConfigError(f"--bartscore-direction must be one of {', '.join(BARTSCORE_DIRECTIONS)}, "
                          f"got {config.bartscore_direction!r}")
    if config.bertscore_layer is not None and not config.bertscore_model:
        raise ConfigError("--bertscore-layer needs --bertscore-model", "name the BERTScore model, or drop the layer")
    if config.bartscore_direction != "ref-hyp" and not config.bartscore_model:
        raise ConfigError("--bartscore-direction needs --bartscore-model", "name the BART model, or drop it")
    if config.bertscore_layer is not None and config.bertscore_layer < 0:
        raise ConfigError(f"--bertscore-layer must be 0 or more, got {config.bertscore_layer}")
    if config.bertscore_model:
        bertscore_layer(config.bertscore_model, config.bertscore_layer)


def load_wordnet() -> Any:
    """nltk's WordNet reader, loaded; one line naming the fix when nltk or its data is missing."""
    try:
        from nltk.corpus import wordnet
    except ImportError as err:
        raise ConfigError("--meteor needs nltk", "pip install 'pifi[generation]'") from err
    try:
        wordnet.ensure_loaded()
    except LookupError as err:
        raise ConfigError("--meteor needs nltk's WordNet data, which is not in nltk's data path",
                          "python -m nltk.downloader wordnet (or set NLTK_DATA to a folder that holds it)") from err
    return wordnet


def tokens(text: str) -> list[str]:
    """Words and punctuation marks (METEOR's input; nltk's meteor lowercases them)."""
    return _TOKEN.findall(text)


def meteor_scores(hypotheses: Sequence[str], references: Sequence[str], wordnet: Any | None = None) -> list[float]:
    """nltk's METEOR of each hypothesis against its one reference."""
    from nltk.translate.meteor_score import meteor_score

    reader = wordnet if wordnet is not None else load_wordnet()
    return [float(meteor_score([tokens(r)], tokens(h), wordnet=reader)) for h, r in zip(hypotheses, references)]


def mean(values: Sequence[float]) -> float:
    return fmean(values) if values else 0.0
