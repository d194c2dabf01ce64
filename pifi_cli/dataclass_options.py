"""Typer options built from the library's option dataclasses: each default and help text is written once.

:func:`with_dataclass_options` gives a command one ``--option`` per field of the given dataclass groups
(:mod:`pifi_train.options`): the field's type, default, help (its metadata), its ``--x/--no-x`` spelling,
and a help panel per group. The command receives them in ``**options``; :func:`values_for` turns them
into dataclass keyword values (repeatable options: None -> the field's default).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Annotated, Any, Callable, Iterable, Optional

import typer

from pifi_train.options import default_of

_PANELS = {"DataOptions": "Data", "PlugOptions": "Model", "OptimOptions": "Optimisation", "RunOptions": "Run",
           "AblationOptions": "Ablations", "TrackingOptions": "Tracking", "QaOptions": "Extractive QA",
           "Seq2SeqOptions": "Sequence-to-sequence"}


def _cli_type(kind: Any) -> tuple[Any, bool]:
    """(the type typer parses, whether the option repeats) for a field type."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is list or any(typing.get_origin(a) is list for a in args):
        return Optional[list[str]], True
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return Optional[args[0]], False
    return kind, False


def _parameters(groups: Iterable[type], exclude: set[str], defaults: dict[str, Any]) -> list[inspect.Parameter]:
    params = []
    for group in groups:
        hints = typing.get_type_hints(group)
        for f in dataclasses.fields(group):
            if f.name in exclude:
                continue
            kind, repeats = _cli_type(hints[f.name])
            default = defaults.get(f.name, None if repeats else default_of(f))
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            option = typer.Option(flag, help=f.metadata.get("help"), hidden=bool(f.metadata.get("hidden")),
                                  rich_help_panel=_PANELS.get(group.__name__, group.__name__),
                                  show_default=default is not None and not repeats)
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=Annotated[kind, option]))
    return params


def with_dataclass_options(*groups: type, exclude: Iterable[str] = (),
                           defaults: dict[str, Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add one option per field of ``groups`` (minus ``exclude``) to a command that takes ``**options``;
    ``defaults`` overrides the CLI default of a field (e.g. None meaning "the run's own")."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command)
        hints = typing.get_type_hints(command, include_extras=True)  # the command's own options, evaluated
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
               if p.kind != inspect.Parameter.VAR_KEYWORD]
        added = _parameters(groups, set(exclude) | {p.name for p in own}, dict(defaults or {}))
        command.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
        command.__annotations__ = {**hints, **{p.name: p.annotation for p in added}}
        return command

    return decorate


def values_for(cls: type, options: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The keyword values of dataclass ``cls`` among a command's ``options`` (a repeatable option not given:
    the field's default), plus ``overrides``."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in options:
            value = options[f.name]
            values[f.name] = default_of(f) if value is None and isinstance(default_of(f), list) else value
    return {**values, **overrides}
