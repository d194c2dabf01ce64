"""Tiny, offline seq2seq building blocks: a word-level tokenizer, random T5 and BART, a copy task."""

from __future__ import annotations

import random
from pathlib import Path

import torch

WORDS = [f"w{i}" for i in range(12)]
SPECIAL = ["<pad>", "</s>", "<s>", "<unk>"]  # pad 0, eos 1, bos 2


def make_tokenizer(folder: Path):
    """A word-level fast tokenizer appending </s> (as T5's), pad 0 / eos 1 / bos 2."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                        bos_token="<s>", unk_token="<unk>")
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_tiny_seq2seq(kind: str, folder: Path, seed: int = 0, d_model: int = 64) -> Path:
    """A random tiny T5 or BART (d_model 64 by default) with the word tokenizer, saved as a loadable folder."""
    from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(folder)
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    if kind == "t5":
        config = T5Config(vocab_size=vocab, d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model, num_layers=2,
                          num_heads=4,
                          pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, dropout_rate=0.0)
        model = T5ForConditionalGeneration(config)
    else:
        config = BartConfig(vocab_size=vocab, d_model=d_model, encoder_layers=2, decoder_layers=2,
                            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * d_model,
                            decoder_ffn_dim=2 * d_model, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                            bos_token_id=2, decoder_start_token_id=1, forced_eos_token_id=1, dropout=0.0)
        model = BartForConditionalGeneration(config)
    model.save_pretrained(folder)
    return folder


def copy_rows(n: int, seed: int) -> list[dict]:
    """source = 2..5 random words, target = the same words (a copy task)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        rows.append({"src": words, "tgt": words})
    return rows
