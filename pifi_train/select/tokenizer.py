"""The LLM's own tokenizer, built from its small tokenizer files (or a GGUF file's header) only.

The class comes from tokenizer_config.json (config.json is not copied: transformers would otherwise
prefer the model type's default tokenizer class over the one the files describe).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pifi_extract.sources import is_gguf
from pifi_extract.errors import ConfigError, SourceNotFoundError

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
    "merges.txt", "vocab.txt", "added_tokens.json", "spiece.model",
)
_CORE = {"tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model"}


def load_tokenizer(source: Any, tokenizer: str | None = None) -> Any:
    """``tokenizer`` (a Hub id or folder) if given, else the one in ``source`` (a pifi Source).

    A GGUF source: transformers builds the tokenizer from a replica of the file's header (the data
    section is a sparse, never-read stand-in), so no weight byte is read.
    """
    from transformers import AutoTokenizer

    if tokenizer is not None:
        tok = AutoTokenizer.from_pretrained(tokenizer)
    elif is_gguf(source):
        _, prefix = source.header()
        with tempfile.TemporaryDirectory(prefix="pifi-tok-") as tmp:
            replica = Path(tmp) / "tokenizer-replica.gguf"
            with open(replica, "wb") as fh:
                fh.write(prefix)
                fh.truncate(source.size(source.file))
            tok = AutoTokenizer.from_pretrained(tmp, gguf_file=replica.name)
    else:
        present = [f for f in TOKENIZER_FILES if f in set(source.files())]
        if not _CORE & set(present):
            raise SourceNotFoundError(
                f"{source.name} has no tokenizer files (tokenizer.json, tokenizer.model, vocab.json...)",
                "pass the model's tokenizer with --tokenizer REPO|DIR",
            )
        with tempfile.TemporaryDirectory(prefix="pifi-tok-") as tmp:
            for name in present:
                (Path(tmp) / name).write_bytes(source.read(name, 0, source.size(name)))
            tok = AutoTokenizer.from_pretrained(tmp)
    if tok.pad_token is None:
        if tok.eos_token is None and tok.unk_token is None:
            raise ConfigError("the tokenizer has no pad, eos or unk token to pad with", "pass --tokenizer")
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok
