"""Loading the small LM (``--slm``) and its tokenizer, with pifi errors instead of tracebacks.

The SLM is any ``AutoModel`` with a ``last_hidden_state``: encoders (BERT,
RoBERTa, ALBERT, ELECTRA, DeBERTa-V2/V3, MiniLM...) and decoder-only models
(SmolLM2, llama...). Encoder-decoder models and remote code are refused. Weights
load in fp32 (the trainable master copy); mixed precision is the trainer's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pifi_extract.errors import OfflineError, PifiError, SourceNotFoundError, UnsupportedModelError


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _translate(name: str, err: Exception) -> PifiError:
    """A pifi error for a failed ``from_pretrained`` of ``name``."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    local = Path(name).expanduser()
    if local.is_dir():
        return SourceNotFoundError(f"--slm {name}: folder is not a loadable model: {first}",
                                   "it needs config.json, tokenizer files and safetensors weights")
    if name.startswith(("/", ".", "~")) or local.suffix:
        return SourceNotFoundError(f"--slm {name}: no such folder")
    if isinstance(err, ValueError) and "repo id" not in first.lower():
        return UnsupportedModelError(f"--slm {name}: {first}")
    if _offline() or "couldn't connect" in first.lower() or "offline" in first.lower():
        return OfflineError(f"--slm {name} is not available offline: {first}",
                            "download it once with network access (it is then cached), or pass a local folder")
    return SourceNotFoundError(f"--slm {name}: not a local folder nor a model on the Hub: {first}")


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def refuse_pickle_only(name: str) -> None:
    """Refuse a local SLM folder whose weights exist only as pickles (``pytorch_model.bin``): pifi never loads one."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if any(n.endswith(".safetensors") or n.endswith(".safetensors.index.json") for n in names):
        return
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise UnsupportedModelError(
            f"--slm {name} holds only pickle weights ({pickles[0]}); pifi never loads pickles",
            "convert them to safetensors (in an environment you trust: load the model, then "
            "save_pretrained(..., safe_serialization=True)) or use a model that ships model.safetensors",
        )


def load_config(name: str) -> Any:
    """The SLM's transformers config (no remote code); pickle-only folders refused before anything loads."""
    from transformers import AutoConfig

    refuse_pickle_only(name)
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise _translate(name, err) from err


def load_slm_config(name: str) -> Any:
    """The config of an encoder or decoder-only SLM (classification, QA); encoder-decoder models refused."""
    config = load_config(name)
    if getattr(config, "is_encoder_decoder", False):
        raise UnsupportedModelError(f"--slm {name} is an encoder-decoder model ({config.model_type})",
                                    "use an encoder (BERT, RoBERTa, DeBERTa...) or a decoder-only model; "
                                    "T5/BART run as --task-type seq2seq")
    return config


def load_pretrained(model_class: Any, name: str, config: Any, pretrained: bool = True) -> nn.Module:
    """``model_class`` (AutoModel, AutoModelForSeq2SeqLM) in fp32: pretrained safetensors weights (never a
    pickle, never remote code), or random weights from ``config``."""
    try:
        if pretrained:
            refuse_pickle_only(name)
            return model_class.from_pretrained(name, config=config, dtype=torch.float32, trust_remote_code=False,
                                               use_safetensors=True)
        return model_class.from_config(config, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise _translate(name, err) from err


def load_slm(name: str, config: Any | None = None, pretrained: bool = True) -> nn.Module:
    """The SLM body (``AutoModel``) in fp32: pretrained weights, or random ones from ``config``."""
    from transformers import AutoModel

    model = load_pretrained(AutoModel, name, config if config is not None else load_slm_config(name), pretrained)
    if not hasattr(model, "config") or not hasattr(model.config, "hidden_size"):
        raise UnsupportedModelError(f"--slm {name}: model has no hidden_size")
    return model


def load_tokenizer(name: str) -> Any:
    """The SLM's tokenizer, padding on the right, with a pad token (eos or unk for decoder models)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise _translate(name, err) from err
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise UnsupportedModelError(f"--slm {name}: tokenizer has no pad, eos or unk token to pad with")
        tokenizer.pad_token = fallback
    tokenizer.padding_side = "right"
    return tokenizer
