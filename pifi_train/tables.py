"""Reading local data tables: CSV / TSV (header line) and JSONL (one object a line), with one-line errors.

Shared by every family's local-file loaders and by ``pifi predict --file``. Torch-free.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError, SourceNotFoundError

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV (header line), TSV (header line) or JSONL (one object a line) file."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"data file not found: {path}")
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"unknown data file type {path.suffix!r}: {path}", "use .csv, .tsv or .jsonl")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path} is not UTF-8 text (byte {err.start}, line {line})",
                          "re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from None
    if kind == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path} line {number} is not JSON: {err.msg}") from None
            except RecursionError:
                raise ConfigError(f"{path} line {number} is nested too deeply") from None
            except ValueError as err:  # e.g. an integer of more than 4300 digits
                raise ConfigError(f"{path} line {number}: {' '.join(str(err).split())[:120]}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path} line {number} is not a JSON object")
            rows.append(row)
    else:
        # newline="" semantics: a quoted field may hold line breaks
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="," if kind == "csv" else "\t")
        try:
            rows = list(reader)
        except csv.Error as err:
            raise ConfigError(f"{path} line {reader.line_num}: cannot read it as {kind.upper()} ({err})",
                              "fix that line; for texts longer than 128 KB use a .jsonl file") from None
    if not rows:
        raise ConfigError(f"data file has no rows: {path}")
    return rows


def require_columns(rows: list[dict[str, Any]], names: Sequence[str], path: Path) -> None:
    """Refuse a table whose header lacks one of ``names`` (listing the columns it has)."""
    for name in names:
        if name not in rows[0]:
            raise ConfigError(f"{path} has no column {name!r}", f"its columns: {', '.join(map(str, rows[0]))}")


def column(rows: list[dict[str, Any]], name: str, path: Path) -> list[Any]:
    require_columns(rows, [name], path)
    values = []
    for number, row in enumerate(rows, 1):
        if row.get(name) is None:
            raise ConfigError(f"{path} row {number} has no value in column {name!r}")
        values.append(row[name])
    return values


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 .txt file (one text per line)."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"input file not found: {path}")
    try:
        lines = [line for line in path.read_bytes().decode("utf-8-sig").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text (byte {err.start})", "re-save it as UTF-8") from None
    if not lines:
        raise ConfigError(f"input file has no lines: {path}")
    return lines
