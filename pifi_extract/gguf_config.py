"""The model config of a GGUF file, as transformers itself reads it from the metadata.

transformers' reader needs a file, so it reads a replica: the header without the vocabulary
arrays (see :func:`~pifi_extract.gguf_header.slim_header`) followed by a sparse, never-read
stand-in for the data section, so that a Hub file is never downloaded whole.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .errors import UnsupportedModelError
from .gguf_header import GgufHeader, slim_header


def gguf_config(header: GgufHeader, prefix: bytes, file_size: int, name: str) -> dict[str, Any]:
    """The model's complete config (``config.json`` form) from the parsed header and its raw bytes."""
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if header.architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"GGUF architecture {header.architecture!r} cannot be read by transformers' GGUF support",
            "use the model's safetensors repo instead",
        )
    slim = slim_header(prefix, header)
    with tempfile.TemporaryDirectory(prefix="pifi-gguf-") as tmp:
        replica = Path(tmp) / "header-replica.gguf"
        with open(replica, "wb") as fh:
            fh.write(slim)
            fh.truncate(len(slim) + file_size - header.data_start)
        try:
            config = AutoConfig.from_pretrained(tmp, gguf_file=replica.name).to_dict()
        except (ValueError, KeyError, NotImplementedError) as err:
            raise UnsupportedModelError(f"transformers cannot build a config from {name}: {err}") from None
    config["_name_or_path"] = name
    return config


def config_object(config: dict[str, Any]) -> Any:
    """The transformers config object of a ``config.json``-form dict."""
    from transformers import AutoConfig

    values = dict(config)
    return AutoConfig.for_model(values.pop("model_type"), **values)
