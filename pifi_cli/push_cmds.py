"""`pifi push`: share a fine-tuned run (trainable part, config, metrics, tokenizer, model card) via the Hub."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import TokenOpt, say, warn


def push(
    run_dir: Annotated[str, typer.Option("--run-dir", help="A finished run directory (one seed).")],
    to: Annotated[str, typer.Option("--to", help="Hub model repo ORG/REPO (created if missing).")],
    private: Annotated[bool, typer.Option("--private/--public", help="Visibility of a repo created by this push.")] = True,
    with_layer: Annotated[bool, typer.Option("--with-layer", help="Also upload the frozen layer artifact(s) (default: by reference); the source's licence files and gating follow.")] = False,
    token: TokenOpt = None,
    i_know_the_license: Annotated[bool, typer.Option("--i-know-the-license", help="Allow --public --with-layer for layers of gated or licence-restricted models (their licence must allow redistribution).")] = False,
) -> None:
    """Upload a trained run to a Hub model repo; `pifi predict --run-dir hf://ORG/REPO` uses it anywhere."""
    from pifi_train.run_share import push_run

    result = push_run(run_dir, to, private=private, token=token, with_layer=with_layer,
                      i_know_the_license=i_know_the_license)
    for warning in result.warnings:
        warn(warning)
    for path in result.paths:
        say(f"pushed hf://{to}/{path}")
    say(f"use it with: pifi predict --run-dir hf://{to} --text \"...\"")


def register(app: typer.Typer) -> None:
    app.command()(push)
