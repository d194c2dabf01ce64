"""The configs of the models the paper uses (its Table 20), typed in once, so ``pifi cost`` can count the paper's
configurations without downloading anything. Each is the model's own ``config.json`` reduced to the fields that
shape its tensors (the rest keep transformers' defaults); tests/test_cost.py checks every parameter count against
Table 20. Torch-free.
"""

from __future__ import annotations

from typing import Any

from pifi_extract.errors import ConfigError

_LLAMA_31_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192}
_LLAMA_31 = {"model_type": "llama", "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
             "rope_theta": 500000.0, "rope_scaling": _LLAMA_31_ROPE}
_MISTRAL_7B = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-5,
               "max_position_embeddings": 32768}
_QWEN2 = {"model_type": "qwen2", "vocab_size": 151936, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
          "max_position_embeddings": 131072}

# name -> config.json fields (SLMs first, then the LLMs whose layers the paper plugs)
CONFIGS: dict[str, dict[str, Any]] = {
    "google-bert/bert-base-uncased": {"model_type": "bert"},  # BertConfig's defaults are bert-base-uncased's
    "google-bert/bert-large-uncased": {"model_type": "bert", "hidden_size": 1024, "num_hidden_layers": 24,
                                       "num_attention_heads": 16, "intermediate_size": 4096},
    "FacebookAI/roberta-base": {"model_type": "roberta", "vocab_size": 50265, "max_position_embeddings": 514,
                                "type_vocab_size": 1, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                                "layer_norm_eps": 1e-5},
    "google/electra-base-discriminator": {"model_type": "electra", "embedding_size": 768, "hidden_size": 768,
                                          "num_hidden_layers": 12, "num_attention_heads": 12,
                                          "intermediate_size": 3072},
    "microsoft/deberta-base": {"model_type": "deberta", "vocab_size": 50265, "relative_attention": True,
                               "max_relative_positions": -1, "pos_att_type": ["c2p", "p2c"], "type_vocab_size": 0,
                               "position_biased_input": False, "layer_norm_eps": 1e-7},
    "microsoft/deberta-v3-base": {"model_type": "deberta-v2", "vocab_size": 128100, "hidden_size": 768,
                                  "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                                  "relative_attention": True, "max_relative_positions": -1, "position_buckets": 256,
                                  "norm_rel_ebd": "layer_norm", "share_att_key": True, "pos_att_type": ["p2c", "c2p"],
                                  "position_biased_input": False, "type_vocab_size": 0, "layer_norm_eps": 1e-7,
                                  "max_position_embeddings": 512},
    "google-t5/t5-base": {"model_type": "t5", "vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 3072,
                          "num_layers": 12, "num_heads": 12, "feed_forward_proj": "relu", "decoder_start_token_id": 0,
                          "pad_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": True},
    "facebook/bart-base": {"model_type": "bart", "vocab_size": 50265, "d_model": 768, "encoder_layers": 6,
                           "decoder_layers": 6, "encoder_attention_heads": 12, "decoder_attention_heads": 12,
                           "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, "max_position_embeddings": 1024,
                           "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2},
    "meta-llama/Llama-3.1-8B": {**_LLAMA_31, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                                "num_attention_heads": 32, "num_key_value_heads": 8},
    "meta-llama/Llama-3.1-70B": {**_LLAMA_31, "hidden_size": 8192, "intermediate_size": 28672,
                                 "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8},
    "mistralai/Mistral-7B-v0.1": {**_MISTRAL_7B, "vocab_size": 32000, "rope_theta": 10000.0, "sliding_window": 4096},
    "mistralai/Mistral-7B-v0.3": {**_MISTRAL_7B, "vocab_size": 32768, "rope_theta": 1000000.0},
    "Qwen/Qwen2-0.5B": {**_QWEN2, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                        "num_attention_heads": 14, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "Qwen/Qwen2-1.5B": {**_QWEN2, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                        "num_attention_heads": 12, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "Qwen/Qwen2-7B": {**_QWEN2, "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
                      "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4},
    "google/gemma-2-9b": {"model_type": "gemma2", "vocab_size": 256000, "hidden_size": 3584,
                          "intermediate_size": 14336, "num_hidden_layers": 42, "num_attention_heads": 16,
                          "num_key_value_heads": 8, "head_dim": 256, "query_pre_attn_scalar": 256,
                          "sliding_window": 4096, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
                          "rms_norm_eps": 1e-6, "max_position_embeddings": 8192},
    "tiiuae/falcon-7b": {"model_type": "falcon", "vocab_size": 65024, "hidden_size": 4544, "num_hidden_layers": 32,
                         "num_attention_heads": 71, "multi_query": True, "parallel_attn": True,
                         "new_decoder_architecture": False, "bias": False, "alibi": False},
}
CONFIGS["meta-llama/Llama-3.1-8B-Instruct"] = CONFIGS["meta-llama/Llama-3.1-8B"]


def known_config(name: str) -> tuple[str, dict[str, Any]] | None:
    """(full name, config fields) of a model named by its Hub id or the id's last part (``bert-base-uncased``),
    case-insensitively; None when unknown."""
    wanted = name.strip().casefold()
    for full, config in CONFIGS.items():
        if wanted in (full.casefold(), full.rsplit("/", 1)[-1].casefold()):
            return full, dict(config)
    return None


def require_config(name: str, option: str) -> tuple[str, dict[str, Any]]:
    """:func:`known_config`, or one line listing the known names."""
    found = known_config(name)
    if found is None:
        names = ", ".join(full.rsplit("/", 1)[-1] for full in CONFIGS)
        raise ConfigError(f"{option} {name}: not a local folder or config.json, nor a model pifi knows the config of",
                          f"pass a folder holding its config.json, or one of: {names}")
    return found
