"""BERTScore and BARTScore with transformers' own models (no remote code, safetensors weights only).

BERTScore (Zhang et al. 2020), as the bert-score package computes it without idf or baseline rescaling (the
authors' ``BERTScorer(model_type="bert-base-multilingual-cased")``): each sentence is tokenized with its
special tokens, run through the encoder, the hidden states of layer ``L`` are L2-normalised; every candidate
token is matched to its most similar reference token (special tokens included as matches, weighted 0 in
the average): P = mean over candidate tokens, R = mean over reference tokens, F = 2PR / (P + R); an empty
candidate or reference scores 0. One pair at a time (as the authors scored), so padding never matches.

BARTScore (Yuan et al. 2021): the mean log-likelihood per target token of ``tgt`` given ``src`` under a BART
(targets with their special tokens; the authors' checkpoint: facebook/bart-large-cnn). ``ref-hyp`` (their
precision, the paper's direction), ``hyp-ref`` (recall), ``f`` (the mean of both), ``src-hyp``
(faithfulness to the source).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...slm import load_config, load_pretrained, load_tokenizer
from .extra_metrics import check_bartscore_model, check_bertscore_model, mean, meteor_scores, wanted

BART_MAX_LENGTH = 1024  # BARTScore's truncation
_PREFIX_SPACE = ("Roberta", "GPT2")  # tokenizers bert-score calls with add_prefix_space=True


def _max_length(tokenizer: Any, config: Any, cap: int | None = None) -> int:
    """Truncation length: the smallest of the tokenizer's, the model's positions and ``cap`` that are set."""
    limits = [v for v in (tokenizer.model_max_length, getattr(config, "max_position_embeddings", None), cap)
              if isinstance(v, int) and 0 < v < 10**9]  # an unset model_max_length is a huge sentinel
    return min(limits) if limits else 512


class BertScorer:
    """BERTScore (P, R, F) of candidates against references with one encoder layer."""

    def __init__(self, name: str, layer: int | None, device: torch.device) -> None:
        from transformers import AutoModel

        flag = "--bertscore-model"
        config = load_config(name, flag)
        self.layer = check_bertscore_model(name, layer, config)
        self.tokenizer = load_tokenizer(name, flag)
        self.prefix_space = type(self.tokenizer).__name__.startswith(_PREFIX_SPACE)
        self.max_length = _max_length(self.tokenizer, config)
        self.model = load_pretrained(AutoModel, name, config, flag=flag).eval().to(device)
        self.device = device
        special = {self.tokenizer.cls_token_id, self.tokenizer.sep_token_id} - {None}
        self.special = torch.tensor(sorted(special), dtype=torch.long)

    def _ids(self, text: str) -> list[int]:
        kwargs = {"add_prefix_space": True} if self.prefix_space else {}
        return self.tokenizer(text.strip(), add_special_tokens=True, truncation=True, max_length=self.max_length,
                              **kwargs)["input_ids"]

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """text -> (normalised layer states (T, H), token weights (T,)) for every distinct text."""
        distinct = sorted(set(texts), key=len, reverse=True)
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(distinct), batch_size):
            chunk = distinct[start:start + batch_size]
            ids = [self._ids(t) for t in chunk]
            width = max(len(i) for i in ids)
            batch = torch.tensor([i + [pad] * (width - len(i)) for i in ids], device=self.device)  # (B, T)
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=self.device)
            states = self.model(input_ids=batch, attention_mask=mask,
                                output_hidden_states=True).hidden_states[self.layer].float()  # (B, T, H)
            states = states / states.norm(dim=-1, keepdim=True)
            for text, row, token_ids in zip(chunk, states.cpu(), ids):
                tokens = torch.tensor(token_ids)
                weights = (~torch.isin(tokens, self.special)).float()  # (T,): special tokens weigh 0
                out[text] = (row[:len(token_ids)], weights)
        return out

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> list[tuple[float, float, float]]:
        """(P, R, F) of each candidate against its reference."""
        states = self.embed([*candidates, *references])
        scores = []
        for cand, ref in zip(candidates, references):
            (c, wc), (r, wr) = states[cand], states[ref]
            if wc.sum() == 0 or wr.sum() == 0:  # an empty sentence (special tokens only)
                scores.append((0.0, 0.0, 0.0))
                continue
            sim = c @ r.T  # (Tc, Tr)
            p = float((sim.max(dim=1).values * wc).sum() / wc.sum())
            r_ = float((sim.max(dim=0).values * wr).sum() / wr.sum())
            f = 2 * p * r_ / (p + r_) if p + r_ != 0 else 0.0
            scores.append((p, r_, f))
        return scores


class BartScorer:
    """BARTScore: mean log-likelihood per target token of a target given a source."""

    def __init__(self, name: str, device: torch.device) -> None:
        from transformers import AutoModelForSeq2SeqLM

        flag = "--bartscore-model"
        config = load_config(name, flag)
        check_bartscore_model(name, config)
        self.tokenizer = load_tokenizer(name, flag)
        self.max_length = _max_length(self.tokenizer, config, BART_MAX_LENGTH)
        self.model = load_pretrained(AutoModelForSeq2SeqLM, name, config, flag=flag).eval().to(device)
        self.device = device

    @torch.no_grad()
    def score(self, sources: Sequence[str], targets: Sequence[str], batch_size: int = 4) -> list[float]:
        scores: list[float] = []
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(sources), batch_size):
            enc = lambda texts: self.tokenizer(list(texts), max_length=self.max_length, truncation=True,  # noqa: E731
                                               padding=True, return_tensors="pt").to(self.device)
            src, tgt = enc(sources[start:start + batch_size]), enc(targets[start:start + batch_size])
            labels = tgt["input_ids"]  # (B, L)
            decoder_input_ids = self.model.prepare_decoder_input_ids_from_labels(labels=labels)  # (B, L)
            logits = self.model(input_ids=src["input_ids"], attention_mask=src["attention_mask"],
                                decoder_input_ids=decoder_input_ids).logits.float()  # (B, L, V)
            logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (B, L)
            total = (logp * (labels != pad)).sum(dim=1)  # padding never counts
            scores += (total / tgt["attention_mask"].sum(dim=1)).tolist()
        return scores

    def directed(self, hypotheses: Sequence[str], references: Sequence[str], sources: Sequence[str],
                 direction: str) -> list[float]:
        if direction == "ref-hyp":
            return self.score(references, hypotheses)
        if direction == "hyp-ref":
            return self.score(hypotheses, references)
        if direction == "src-hyp":
            return self.score(sources, hypotheses)
        precision, recall = self.score(references, hypotheses), self.score(hypotheses, references)
        return [(p + r) / 2 for p, r in zip(precision, recall)]


class ExtraScorers:
    """The extra metrics a run asked for; scoring models load on first use and stay for the run."""

    def __init__(self, config: Any, device: torch.device) -> None:
        self.config, self.device = config, device
        self.keys = wanted(config)
        self._bert: BertScorer | None = None
        self._bart: BartScorer | None = None

    def score(self, hypotheses: Sequence[str], references: Sequence[str],
              sources: Sequence[str]) -> tuple[dict[str, float], list[dict[str, float]]]:
        """(the split's means, one dict of per-example scores per example)."""
        per: dict[str, list[float]] = {}
        if "meteor" in self.keys:
            per["meteor"] = meteor_scores(hypotheses, references)
        if "bertscore" in self.keys:
            if self._bert is None:
                self._bert = BertScorer(self.config.bertscore_model, self.config.bertscore_layer, self.device)
            per["bertscore"] = [f for _, _, f in self._bert.score(hypotheses, references)]
        if "bartscore" in self.keys:
            if self._bart is None:
                self._bart = BartScorer(self.config.bartscore_model, self.device)
            per["bartscore"] = self._bart.directed(hypotheses, references, sources, self.config.bartscore_direction)
        rows = [{k: per[k][i] for k in per} for i in range(len(hypotheses))]
        return {k: mean(v) for k, v in per.items()}, rows
