"""Task files that are not Hugging Face datasets (NSMC's and Filmstarts' original TSV files): fetched through
``datasets``' download cache, checked against their sha256 where known, read with pandas as the authors'
``pandas.read_csv`` reads them (``pifi[datasets]`` brings both)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pifi_extract.errors import ConfigError, CorruptFileError


@dataclass(frozen=True)
class RawFiles:
    """Tab-separated files outside the Hub, read as the authors' pandas code reads them (``pifi[datasets]``
    brings pandas): split -> URL, every column in file order, whether the first line names them."""

    urls: Mapping[str, str]
    columns: tuple[str, ...]
    header: bool
    sha256: Mapping[str, str] = field(default_factory=dict)  # split -> the file's sha256, checked after download
    skip_bad_lines: bool = False  # pandas' on_bad_lines="skip": a line with too many fields is left out


def missing(value: Any) -> bool:
    """A missing cell: None, or pandas' NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def read_raw_file(path: Path, files: RawFiles) -> dict[str, list]:
    """One raw file (column -> values) as the authors' ``pandas.read_csv(sep="\\t")`` reads it: pandas' quoting,
    a header line or ``files.columns`` as names, ``on_bad_lines="skip"`` when asked; every value a string or
    None (missing), labels parsed later."""
    try:
        import pandas
    except ImportError as err:
        raise ConfigError("reading this task's raw files needs pandas", "pip install 'pifi[datasets]'") from err
    frame = pandas.read_csv(path, sep="\t", header=0 if files.header else None,
                            names=None if files.header else list(files.columns), dtype=str,
                            on_bad_lines="skip" if files.skip_bad_lines else "error")
    if list(frame.columns) != list(files.columns):
        raise CorruptFileError(f"{path}: columns {', '.join(map(str, frame.columns))}, expected "
                               f"{', '.join(files.columns)}", "delete the cached download and try again")
    return {c: [None if missing(v) else v for v in frame[c].tolist()] for c in files.columns}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_raw_files(files: RawFiles, datasets: Any, cache_dir: str | None) -> dict[str, dict[str, list]]:
    """Download (or reuse ``datasets``' cached copy of) a task's raw files, check their sha256, read them."""
    manager = datasets.DownloadManager(download_config=datasets.DownloadConfig(cache_dir=cache_dir))
    raw = {}
    for split, url in files.urls.items():
        path = Path(manager.download(url))
        expected = files.sha256.get(split)
        if expected and _sha256(path) != expected:
            raise CorruptFileError(f"{url} (cached as {path}) is not the file the authors used (sha256 differs)",
                                   "delete the cached file and try again")
        raw[split] = read_raw_file(path, files)
    return raw
