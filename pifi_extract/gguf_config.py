"""The model config of a GGUF file, as transformers itself reads it from the metadata.

transformers' reader needs a file, so it reads a replica: the header without the vocabulary
arrays (see :func:`~pifi_extract.gguf_header.slim_header`) followed by a sparse, never-read
stand-in for the data section, so that a Hub file is never downloaded whole.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from .errors import CorruptFileError, UnsupportedModelError
from .gguf_header import GgufHeader, slim_header

_BLOCK = re.compile(r"blk\.(\d+)\.")


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
    _check_block_count(config, header, name)
    return config


def _check_block_count(config: dict[str, Any], header: GgufHeader, name: str) -> None:
    """The metadata's block count must be the blocks the file's tensors hold (``blk.0.`` .. ``blk.N-1.``): a
    file claiming 2**31 - 1 layers is refused here, before anything sizes a table by that count."""
    from .architectures import ARCHITECTURES

    spec = ARCHITECTURES.get(str(config.get("model_type")))
    claimed = config.get(spec.num_layers_attr if spec else "num_hidden_layers")
    blocks = {int(m.group(1)) for t in header.tensors if (m := _BLOCK.match(t))}
    if blocks != set(range(claimed if isinstance(claimed, int) and 0 <= claimed <= len(blocks) else -1)):
        held = f"blk.0-blk.{max(blocks)}" if blocks else "none"
        raise CorruptFileError(f"{name}: the GGUF metadata says {str(claimed)[:20]} blocks but its tensors hold "
                               f"{len(blocks)} ({held})", "the file is corrupt or crafted: download it again")


def config_object(config: dict[str, Any]) -> Any:
    """The transformers config object of a ``config.json``-form dict."""
    from transformers import AutoConfig

    values = dict(config)
    return AutoConfig.for_model(values.pop("model_type"), **values)
