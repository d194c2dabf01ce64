"""``--method llm`` (Table 15): the LLM's own embedding rows for the tokens a run uses, never the whole LLM.

The layer artifact's provenance names the source it was extracted from (a Hub repo at a pinned commit, a
local folder, a GGUF file). :class:`RowSource` opens that source, checks that the files the layer was read
from are unchanged (their ETags), reads the LLM's tokenizer from its small files
(:func:`pifi_train.select.tokenizer.load_tokenizer`) and, by range reads, only the embedding rows of the token
ids the data uses (:func:`pifi_train.select.embedding_rows.read_embedding_rows`: scaled as the model scales
them). :class:`EmbeddingRows` holds those rows, frozen, and looks token ids up in them.

A run stores its rows in ``checkpoint/embedding_rows.safetensors`` (``ids`` and ``rows``, in the narrowest of
bf16/fp16/fp32 that holds them exactly): predict needs neither the network nor the LLM for texts made of tokens
the run saw. A text with a token the run has no row for reads the missing rows from the same source (kept
in memory, not written to the run); where the source cannot be reached (offline) that is one line naming it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from pifi_extract.errors import ArtifactError, ConfigError, CorruptFileError, PifiError

from . import checkpoint as ckpt
from .run_files import EMBEDDING_ROWS as ROWS_FILE

ROWS_FORMAT = "pifi-embedding-rows-1"
_NARROW = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class RowSource:
    """Where a layer artifact came from: the place its LLM's embedding rows and tokenizer are read."""

    name: str
    kind: str  # hub | local | gguf
    commit: str | None
    gguf_file: str | None
    gguf_host: str | None
    files: dict[str, Any]  # file -> ETag when the layer was extracted
    config: dict[str, Any] = field(repr=False)  # the LLM's config.json

    @classmethod
    def of_layers(cls, paths: Sequence[str]) -> "RowSource":
        """The source of one artifact, or of several that all come from one LLM (a stack)."""
        from pifi_extract.artifact import read_artifact

        infos = [read_artifact(path) for path in paths]
        found = {(i.provenance.get("source"), i.provenance.get("commit"), i.provenance.get("gguf_file")) for i in infos}
        if len(found) != 1:
            raise ConfigError("--method llm: the layer artifacts come from different LLMs",
                              "stack layers of one LLM: its embedding rows feed the first one")
        first = infos[0].provenance
        if not first.get("source"):
            raise ArtifactError(f"{paths[0]} records no source model", "extract the layer again with `pifi extract`")
        return cls(str(first["source"]), str(first.get("source_kind") or "local"), first.get("commit"),
                   first.get("gguf_file"), first.get("gguf_host"), dict(first.get("files") or {}),
                   dict(infos[0].config))

    def describe(self) -> str:
        at = f"@{self.commit[:12]}" if self.commit and "hub" in (self.kind, self.gguf_host) else ""
        return f"{self.name}{at}" + (f"/{self.gguf_file}" if self.gguf_file and self.gguf_host == "hub" else "")

    def open(self, token: str | bool | None = None) -> Any:
        """The source, checked to hold the files the layer was extracted from (unchanged)."""
        from pifi_extract.extract import open_source

        hub = self.kind == "hub" or self.gguf_host == "hub"
        gguf_file = self.gguf_file if self.gguf_file and (hub or Path(self.name).is_dir()) else None
        source = open_source(self.name, self.commit if hub else None, token=token, gguf_file=gguf_file)
        for name, tag in self.files.items():
            if tag is not None and source.etag(name) != tag:
                raise ArtifactError(f"{self.describe()}: {name} changed since the layer was extracted from it",
                                    "its embedding rows would not match the layer; extract the layer again")
        return source

    def tokenizer(self, source: Any) -> Any:
        """The LLM's tokenizer (its small files only), padding on the right with a pad token."""
        from pifi_extract.errors import SourceNotFoundError

        from .select.tokenizer import load_tokenizer

        try:
            tokenizer = load_tokenizer(source)
        except SourceNotFoundError as err:
            raise SourceNotFoundError(f"--method llm: {err.message}",
                                      "the layer's LLM must ship its tokenizer (tokenizer.json, tokenizer.model...) "
                                      "beside its weights") from None
        tokenizer.padding_side = "right"  # positions 0..n-1 for the real tokens, as in the LLM
        return tokenizer

    def read(self, source: Any, ids: Iterable[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sorted distinct ids (U,), their scaled rows (U, H) float32), by range reads."""
        from pifi_extract.architectures import arch_for_config

        from .select.embedding_rows import read_embedding_rows

        wanted = torch.tensor(sorted(set(int(i) for i in ids)), dtype=torch.long)  # (U,)
        rows = read_embedding_rows(source, arch_for_config(self.config), self.config, wanted.tolist())  # (U, H)
        return wanted, rows


def narrowest(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` in bf16 or fp16 when that holds every value exactly (rows read from a bf16 LLM), else fp32."""
    for dtype in _NARROW:
        narrow = rows.to(dtype)
        if torch.equal(narrow.float(), rows.float()):
            return narrow
    return rows.float()


class EmbeddingRows(nn.Module):
    """Frozen embedding rows of some token ids: ``(B, T)`` ids -> ``(B, T, H)`` float32 rows.

    Rows and ids are non-persistent buffers (never in a checkpoint's trainable tensors; the run keeps them in
    their own file). ``reader(missing ids) -> rows`` fetches rows of ids it lacks (predict); without one, a
    missing id is an error. ``config`` is the LLM's transformers config (pooling: a decoder's last token).
    """

    def __init__(self, ids: torch.Tensor, rows: torch.Tensor, config: Any,
                 reader: Callable[[list[int]], torch.Tensor] | None = None) -> None:
        super().__init__()
        if ids.ndim != 1 or rows.ndim != 2 or len(ids) != len(rows):
            raise CorruptFileError(f"embedding rows of shape {tuple(rows.shape)} for {tuple(ids.shape)} token ids")
        order = ids.argsort()
        self.register_buffer("ids", ids[order].long(), persistent=False)  # (U,) sorted
        self.register_buffer("rows", rows[order], persistent=False)  # (U, H)
        self.config = config
        self.reader = reader

    @property
    def hidden_size(self) -> int:
        return int(self.rows.shape[1])

    def missing(self, input_ids: torch.Tensor) -> list[int]:
        """The distinct ids of ``input_ids`` that have no row here."""
        wanted = torch.unique(input_ids.flatten().to(self.ids.device))  # (K,)
        where = torch.searchsorted(self.ids, wanted).clamp_max(max(len(self.ids) - 1, 0))  # (K,)
        known = self.ids[where] == wanted if len(self.ids) else torch.zeros_like(wanted, dtype=torch.bool)
        return wanted[~known].tolist()

    def add(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """Add rows of new ids (in memory)."""
        merged_ids = torch.cat([self.ids, ids.to(self.ids.device).long()])  # (U + K,)
        merged = torch.cat([self.rows, rows.to(self.rows.device, self.rows.dtype)])  # (U + K, H)
        order = merged_ids.argsort()
        self.ids, self.rows = merged_ids[order], merged[order]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, H)
        missing = self.missing(input_ids)
        if missing:
            if self.reader is None:
                raise ConfigError(f"token ids {missing[:5]} have no embedding row in this run")
            self.add(torch.tensor(missing, dtype=torch.long), self.reader(missing))
        index = torch.searchsorted(self.ids, input_ids.to(self.ids.device))  # (B, T)
        return self.rows[index].float()  # (B, T, H)


def rows_sha256(ids: torch.Tensor, rows: torch.Tensor) -> str:
    """A hash of the ids and the rows' bytes (config.json records it; predict checks it)."""
    digest = hashlib.sha256()
    digest.update(ids.long().contiguous().numpy().tobytes())
    digest.update(rows.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_rows(path: Path, table: EmbeddingRows) -> None:
    """Write the table's ids and rows (``checkpoint/embedding_rows.safetensors``)."""
    ckpt.save_trainable(path, {"ids": table.ids.cpu(), "rows": table.rows.cpu()}, {"format": ROWS_FORMAT})


@dataclass
class LlmBackbone:
    """What --method llm has instead of an SLM: the LLM's config and tokenizer, and the rows the data uses."""

    config: Any  # the LLM's transformers config
    tokenizer: Any
    embeddings: EmbeddingRows
    record: dict[str, Any]  # config.json's model.llm_embeddings: where the rows came from, how many, their hash


def llm_backbone(layer_paths: Sequence[str], used_ids: Callable[[Any], Iterable[int]],
                 token: str | bool | None = None, saved: Path | None = None) -> LlmBackbone:
    """Open the layers' source, read its tokenizer, then the rows of ``used_ids(tokenizer)`` and the pad token.
    ``saved``: a resumed run's checkpoint folder, whose tokenizer and rows are used when they cover the data."""
    from .frozen_layer import make_config

    origin = RowSource.of_layers(layer_paths)
    config = make_config(origin.config)
    if saved is not None and (saved / ROWS_FILE).is_file():
        from .run_files import CONFIG, read_json
        from .slm import load_tokenizer

        record = dict((read_json(saved.parent / CONFIG).get("model") or {}).get("llm_embeddings") or {})
        tokenizer = load_tokenizer(str(saved))
        ids, rows = load_rows(saved / ROWS_FILE, record)
        table = EmbeddingRows(ids, rows, config)
        if not table.missing(torch.tensor(sorted({*used_ids(tokenizer), tokenizer.pad_token_id}))):
            return LlmBackbone(config, tokenizer, table, record)
    source = origin.open(token)
    tokenizer = origin.tokenizer(source)
    ids, rows = origin.read(source, [*used_ids(tokenizer), tokenizer.pad_token_id])
    rows = narrowest(rows)
    record = {"source": origin.name, "source_kind": origin.kind, "commit": origin.commit,
              "gguf_file": origin.gguf_file, "file": ROWS_FILE, "rows": len(ids), "hidden_size": int(rows.shape[1]),
              "dtype": str(rows.dtype).replace("torch.", ""), "sha256": rows_sha256(ids, rows)}
    return LlmBackbone(config, tokenizer, EmbeddingRows(ids, rows, config), record)


def run_embeddings(checkpoint: Path, recorded: dict[str, Any], layer_paths: Sequence[str],
                   token: str | bool | None = None) -> EmbeddingRows:
    """A finished run's rows (checked against its record), reading rows of unseen tokens from the LLM source."""
    from pifi_extract.artifact import read_artifact

    from .frozen_layer import make_config

    ids, rows = load_rows(checkpoint / ROWS_FILE, recorded)
    config = make_config(read_artifact(layer_paths[0]).config)
    return EmbeddingRows(ids, rows, config, lazy_reader(layer_paths, token))


def load_rows(path: Path, recorded: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, rows) of a run, checked against what its config.json recorded."""
    if not path.is_file():
        raise CorruptFileError(f"{path} is missing: a --method llm run keeps its embedding rows there",
                               "restore the run's checkpoint/ folder")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CorruptFileError(f"{path} is unreadable: {err}") from None
    ids, rows = tensors.get("ids"), tensors.get("rows")
    if ids is None or rows is None or rows_sha256(ids, rows) != recorded.get("sha256"):
        raise CorruptFileError(f"{path} is not the embedding rows this run recorded",
                               "restore the run's checkpoint/ folder")
    return ids, rows


def lazy_reader(layer_paths: Sequence[str], token: str | bool | None = None) -> Callable[[list[int]], torch.Tensor]:
    """Reads rows of ids a run lacks from the layer's source, opened on first need; a failure is one line."""
    opened: list[Any] = []

    def read(ids: list[int]) -> torch.Tensor:
        try:
            origin = RowSource.of_layers(layer_paths)
            if not opened:
                opened.append(origin.open(token))
            wanted, rows = origin.read(opened[0], ids)
        except PifiError as err:
            raise type(err)(f"the texts use {len(ids)} token(s) this --method llm run has no embedding rows for; "
                            f"reading them failed: {err.message}",
                            err.hint or "give the run access to the LLM source (network, or the local folder)"
                            ) from None
        if wanted.tolist() != sorted(ids):
            raise CorruptFileError("the LLM source returned other rows than asked for")
        return rows

    return read
