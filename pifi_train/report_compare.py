"""Any arm against any arm in ``pifi report``: ``--against SELECTOR`` picks the row each row is compared with.

A selector is ``name=value[,name=value...]`` over what the report shows of a row: any option that changes a
result (by its name or its flag spelling: ``layer_init`` or ``layer-init``), ``task`` (the built-in task or the
training file) and ``layer`` (the plugged layer: its cache key, source, file or sha256 prefix). A value matches
an option's value as written, or by a trailing part of a path or Hub id (``slm=bert-large-uncased`` matches
``google-bert/bert-large-uncased``), numbers by value, booleans as true/false, lists joined by ``+``.

Row R's reference is the one other row T of the same family and split that fits the selector and equals R in
every other option both rows have (and in the plugged layer, unless the selector names ``layer``). The default
``method=base`` is therefore "the base SLM with the same options" (a base row has no layer options, so PiFi's do
not count). A row whose reference is ambiguous gets no Δ and a note naming the options that tell the candidates
apart. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Sequence

from pifi_extract.errors import ConfigError

from .options import result_options

DEFAULT_AGAINST = "method=base"
PSEUDO = ("task", "layer")  # selector names that are not options
# options whose recorded value follows from another one (``--pooling auto`` is recorded as the pooling the SLM
# resolved to: CLS for BERT, the last token for a decoder): another SLM may differ in them without being "other options"
DERIVED = {"pooling": "slm"}


def implied(name: str, rows: Sequence[dict[str, Any]]) -> bool:
    """Whether option ``name``'s values over ``rows`` follow from the option it is derived from (one value each)."""
    source = DERIVED.get(name)
    if source is None:
        return False
    seen: dict[str, str] = {}
    return all(seen.setdefault(repr(r.get(source)), repr(r.get(name))) == repr(r.get(name)) for r in rows)


@dataclass(frozen=True)
class LayerInfo:
    """What the report knows of one plugged layer (config.json's ``layer`` record)."""

    source: str  # the LLM it came from (Hub id, folder or file), or the artifact's path
    reference: str  # what --layer-artifact said (cache key or file)
    path: str
    sha256: str
    index: int | None

    def names(self) -> list[str]:
        return [n for n in (self.reference, self.source, self.path) if n]


@dataclass(frozen=True)
class Selector:
    """``name=value`` clauses, all of which a row must fit."""

    clauses: tuple[tuple[str, str], ...]
    text: str

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.clauses}

    @property
    def is_default(self) -> bool:
        return self.clauses == parse_selector(DEFAULT_AGAINST).clauses


def parse_selector(text: str, option: str = "--against") -> Selector:
    """``"slm=bert-large-uncased,method=base"`` -> a Selector; unknown names or a clause without ``=``: one line."""
    known = set(result_options()) | set(PSEUDO)
    clauses = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep or not name or not value.strip():
            raise ConfigError(f"{option} {text!r}: {part!r} is not name=value",
                              f"e.g. {option} 'slm=bert-large-uncased,method=base'")
        if name not in known:
            raise ConfigError(f"{option}: {name!r} is not an option a report row has",
                              f"use task, layer or one of: {', '.join(sorted(set(result_options())))}")
        clauses.append((name, value.strip()))
    if not clauses:
        raise ConfigError(f"{option} needs at least one name=value", f"e.g. {option} method=base")
    return Selector(tuple(clauses), ",".join(f"{n}={v}" for n, v in clauses))


def _tails(text: str) -> set[str]:
    """A path or Hub id and every trailing part of it (``a/b/c``: c, b/c, a/b/c)."""
    parts = PurePosixPath(text.replace("\\", "/")).parts
    return {text, *("/".join(parts[-k:]) for k in range(1, len(parts) + 1))}


def value_fits(value: Any, wanted: str) -> bool:
    """Whether an option's ``value`` is what a selector clause wrote (see the module docstring)."""
    want = wanted.strip()
    if value is None:
        return want.lower() in ("none", "null", "-")
    if isinstance(value, bool):
        return want.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            number = float(want)
        except ValueError:
            return False
        return math.isclose(float(value), number, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(value, (list, tuple)):
        return want.casefold() in ("+".join(map(str, value)).casefold(), str(list(value)).casefold())
    return want.casefold() in {t.casefold() for t in _tails(str(value))}


def layers_fit(layers: Sequence[LayerInfo], wanted: str) -> bool:
    """A row's plugged layer(s) against ``layer=...`` (a stack: one ``+``-separated value per layer)."""
    parts = [p.strip() for p in wanted.split("+")]
    if not layers or len(parts) != len(layers):
        return False
    for layer, part in zip(layers, parts):
        by_hash = len(part) >= 6 and layer.sha256.lower().startswith(part.lower())
        if not by_hash and not any(value_fits(name, part) for name in layer.names()):
            return False
    return True


def row_fits(options: dict[str, Any], layers: Sequence[LayerInfo], selector: Selector) -> bool:
    """Whether a row (its options and layers) fits every clause; an option the row does not have never fits."""
    for name, wanted in selector.clauses:
        if name == "layer":
            ok = layers_fit(layers, wanted)
        elif name == "task":
            ok = any(options.get(k) is not None and value_fits(options[k], wanted) for k in ("task", "train_file"))
        else:
            ok = name in options and value_fits(options[name], wanted)
        if not ok:
            return False
    return True


def agrees(mine: dict[str, Any], theirs: dict[str, Any], my_layers: Sequence[LayerInfo],
           their_layers: Sequence[LayerInfo], free: set[str]) -> bool:
    """Equal in every option both rows have, but those in ``free`` (the selector's), and in the layers plugged
    (when both plug one and ``layer`` is not free)."""
    free = set(free) | ({"task", "train_file"} if "task" in free else set())
    free |= {name for name, source in DERIVED.items() if source in free}  # another SLM: its own pooling
    for name in mine.keys() & theirs.keys():
        if name not in free and mine[name] != theirs[name]:
            return False
    if "layer" not in free and my_layers and their_layers:
        return [layer.sha256 for layer in my_layers] == [layer.sha256 for layer in their_layers]
    return True


def differences(rows: Sequence[tuple[dict[str, Any], Sequence[LayerInfo]]]) -> list[str]:
    """The option names (and ``layer``) whose values differ between ``rows``: what would tell them apart."""
    names = sorted({n for options, _ in rows for n in options})
    found = [n for n in names if len({repr(options.get(n)) for options, _ in rows}) > 1]
    if len({tuple(layer.sha256 for layer in layers) for _, layers in rows}) > 1:
        found.append("layer")
    return found
