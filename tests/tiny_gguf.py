"""Write tiny GGUF files from tiny transformers models, the way llama.cpp's converter does.

``write_tiny_gguf(model, path, quantize={...})`` names tensors with the gguf package's
HF->GGUF table, applies llama.cpp's q/k rotary permutation for Llama-family files, and
stores each tensor as F32, F16 or a quantized type (``gguf.quants.quantize``). The file
is then a fair stand-in for a real GGUF: transformers' own GGUF loader reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import gguf
import numpy as np
import torch

# transformers model_type -> GGUF general.architecture (llama.cpp's names)
GGUF_ARCH = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
PERMUTES_QK = {"llama"}  # llama.cpp's LlamaModel.permute
# Storage types written from a numpy dtype (the writer infers the ggml type from it).
_PLAIN_TYPES = {
    gguf.GGMLQuantizationType.F16: np.float16,
    gguf.GGMLQuantizationType.F64: np.float64,
    gguf.GGMLQuantizationType.I32: np.int32,
}


def llama_cpp_permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.LlamaModel.permute (rotary halves -> interleaved pairs)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_tiny_gguf(
    model: torch.nn.Module,
    path: str | Path,
    *,
    quantize: Mapping[str, gguf.GGMLQuantizationType] | None = None,
    vocab_as_tokens: bool = False,
    extra_tokens: int = 0,
    vocab_tokens: int | None = None,
    name: str = "tiny",
) -> Path:
    """Write ``model`` (an AutoModelForCausalLM) as GGUF.

    ``quantize`` maps a GGUF leaf name (``attn_q``, ``ffn_down``, ...) to a storage type; others are F32.
    ``vocab_as_tokens`` states the vocabulary as a token list (as real files do) instead of ``{arch}.vocab_size``;
    ``extra_tokens`` pads the header with that many more long token strings (a header bigger than one read).
    ``vocab_tokens`` states a vocabulary of that many tokens, with scores and token types, as a SentencePiece
    file does (Gemma 3: 262144); the embeddings keep the model's own size (pifi never reads them).
    """
    cfg = model.config
    arch = GGUF_ARCH[cfg.model_type]
    path = Path(path)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    writer.add_rope_dimension_count(head_dim)
    writer.add_license("apache-2.0")
    if vocab_tokens is not None:
        writer.add_tokenizer_model("llama")
        writer.add_token_list([f"<tok_{i}>" for i in range(vocab_tokens)])
        writer.add_token_scores([0.0] * vocab_tokens)
        writer.add_token_types([1] * vocab_tokens)
    elif vocab_as_tokens:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list([f"tok{i}" for i in range(cfg.vocab_size)])
        if extra_tokens:
            writer.add_token_merges([f"merge-{i:06d} " * 4 for i in range(extra_tokens)])
    else:
        writer.add_vocab_size(cfg.vocab_size)

    names = gguf.get_tensor_name_map(
        next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch), cfg.num_hidden_layers
    )
    quantize = dict(quantize or {})
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        base, _, suffix = hf_name.rpartition(".")
        gguf_name = f"{names.get_name(base)}.{suffix}"
        values = tensor.detach().float().numpy().copy()
        leaf = gguf_name.split(".")[-2]
        if cfg.model_type in PERMUTES_QK and suffix == "weight" and leaf in ("attn_q", "attn_k"):
            kv = cfg.num_attention_heads if leaf == "attn_q" else cfg.num_key_value_heads
            values = llama_cpp_permute(values, cfg.num_attention_heads, kv)
        qtype = quantize.get(leaf, gguf.GGMLQuantizationType.F32) if values.ndim == 2 else gguf.GGMLQuantizationType.F32
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(gguf_name, values)
        elif qtype in _PLAIN_TYPES:
            writer.add_tensor(gguf_name, values.astype(_PLAIN_TYPES[qtype]))
        elif qtype not in gguf.quants._type_traits:  # a type gguf cannot quantize (Q8_1): zero blocks of its size
            raw = np.zeros(gguf.quants.quant_shape_to_byte_shape(values.shape, qtype), dtype=np.uint8)
            writer.add_tensor(gguf_name, raw, raw_dtype=qtype)
        else:
            writer.add_tensor(gguf_name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
