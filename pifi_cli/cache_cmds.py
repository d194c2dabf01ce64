"""`pifi cache ls|verify|rm|prune|adopt|push|pull`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import ByteProgress, CacheDirOpt, JsonOpt, QuietOpt, RevisionOpt, TokenOpt, fail, out_console, say, warn

cache_app = typer.Typer(
    help="The pifi layer cache ($PIFI_CACHE, else ~/.cache/pifi): list, verify, remove, prune, adopt, share via the Hub.",
    no_args_is_help=True,
)
KEYS_HELP = "Artifact references: cache keys (org/name:-1, org/name@rev:31:bf16), files in the cache, hf:// paths."


@cache_app.command("ls")
def cache_ls(as_json: JsonOpt = False, cache_dir: CacheDirOpt = None) -> None:
    """List cached artifacts and their total size."""
    from layer_cache import LayerCache

    cache = LayerCache(cache_dir)
    entries = cache.entries()
    total = sum(e.size for e in entries)
    if as_json:
        import json

        temps = [{"path": str(p), "bytes": size} for p, size in cache.temp_files()]
        typer.echo(json.dumps({"root": str(cache.root), "total_bytes": total, "artifacts": [e.to_json() for e in entries],
                               "temp_files": temps}, indent=2))
        return
    _print_cache_table(entries, cache.root, total)
    temps = cache.temp_files()
    if temps:
        from pifi_extract.inspect import human_bytes

        say(f"and {len(temps)} temp files ({human_bytes(sum(s for _, s in temps))}) of unfinished or crashed writers "
            "(`pifi cache prune` removes those of dead writers after an hour)")


@cache_app.command("verify")
def cache_verify(
    keys: Annotated[Optional[list[str]], typer.Argument(help=KEYS_HELP + " Default: every artifact.")] = None,
    against_source: Annotated[bool, typer.Option("--against-source", help="Also re-read each layer from its source (Hub repo at its commit, or local folder) and compare the tensors.")] = False,
    token: TokenOpt = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Recompute each artifact's data sha256: OK or CORRUPT; exit code 1 if any is corrupt, 3 if (--against-source)
    some source could not be read (UNCHECKED: intact by its own hashes, keep it)."""
    from layer_cache import LayerCache, resolve_key, verify

    chosen = [resolve_key(k, cache_dir=cache_dir) for k in keys] if keys else None
    if against_source:
        from layer_cache.source_check import verify_against_source

        results = [verify_against_source(k, cache_dir=cache_dir, token=token) for k in chosen or LayerCache(cache_dir).keys()]
    else:
        results = verify(chosen, cache_dir=cache_dir)
    from rich.markup import escape

    for r in results:
        status = "[yellow]UNCHECKED[/]" if r.unchecked else "[green]OK[/]" if r.ok else "[bold red]CORRUPT[/]"
        detail = f"  ({escape(r.error)})" if r.error else ""
        out_console.print(f"{status}  {escape(r.key.display())}{detail}", highlight=False, soft_wrap=True)
    bad = [r for r in results if not r.ok]
    unchecked = [r for r in results if r.unchecked]
    if bad:
        fail(f"{len(bad)} of {len(results)} artifacts are corrupt; remove them with `pifi cache rm KEY` and extract again")
        sys.exit(1)  # (typer.Exit's code is lost under standalone_mode=False)
    if unchecked:
        warn(f"{len(unchecked)} of {len(results)} artifacts could not be checked against their source (see above); "
             "they are intact by their own hashes: keep them, and check again where the source can be read")
        sys.exit(3)
    if not results:
        say("the cache is empty")


@cache_app.command("rm")
def cache_rm(keys: Annotated[list[str], typer.Argument(help=KEYS_HELP)], cache_dir: CacheDirOpt = None) -> None:
    """Remove artifacts from the cache (all references are checked before anything is removed)."""
    from layer_cache import LayerCache, resolve_key

    chosen = [resolve_key(k, cache_dir=cache_dir) for k in keys]
    cache = LayerCache(cache_dir)
    for key in dict.fromkeys(chosen):
        cache.remove(key)
        say(f"removed {key.display()}")


@cache_app.command("prune")
def cache_prune(
    older_than: Annotated[Optional[str], typer.Option("--older-than", help="Remove artifacts unused for this long (30d, 12h).")] = None,
    max_size: Annotated[Optional[str], typer.Option("--max-size", help="Then remove the least recently used until the cache fits (20GB).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be removed.")] = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Remove unused artifacts; always sweeps what crashed extractions left behind."""
    from layer_cache import prune
    from pifi_extract.inspect import human_bytes

    result = prune(older_than=older_than, max_size=max_size, dry_run=dry_run, cache_dir=cache_dir)
    verb = "would remove" if dry_run else "removed"
    for e in result.removed:
        say(f"{verb} {e.reference} ({human_bytes(e.size)})")
    for e in result.skipped:
        warn(f"kept {e.reference}: it is reached through a symbolic link, and pifi never deletes through one")
    if dry_run:
        for p in result.paths:
            say(f"would delete {p}")
    elif result.paths:
        say(f"removed {len(result.paths)} files and empty folders of pifi's ({result.temp_files_removed} stale temp files)")
    say(f"{verb} {len(result.removed)} artifacts, {human_bytes(result.freed_bytes)}; {human_bytes(result.kept_bytes)} kept")


@cache_app.command("adopt")
def cache_adopt(cache_dir: CacheDirOpt = None) -> None:
    """Mark a cache folder an older pifi wrote (no .pifi-cache marker) as pifi's, once every file in it is checked to be pifi's."""
    from layer_cache import LayerCache, adopt

    root = LayerCache(cache_dir).root
    say(f"adopted {root} as a pifi cache" if adopt(cache_dir=cache_dir) else f"{root} already is a pifi cache")


@cache_app.command("push")
def cache_push(
    keys: Annotated[list[str], typer.Argument(help=KEYS_HELP)],
    to: Annotated[str, typer.Option("--to", help="Hub model repo ORG/REPO (created if missing).")],
    private: Annotated[bool, typer.Option("--private/--public", help="Visibility of a repo created by this push.")] = True,
    token: TokenOpt = None,
    cache_dir: CacheDirOpt = None,
    i_know_the_license: Annotated[bool, typer.Option("--i-know-the-license", help="Allow --public for layers of gated or licence-restricted models (their licence must allow redistribution).")] = False,
) -> None:
    """Upload artifacts to a Hub model repo, with a generated model card (the source's licence files and gating follow)."""
    from layer_cache import push
    from layer_cache.card import train_command

    result = push(keys, to, private=private, token=token, cache_dir=cache_dir, i_know_the_license=i_know_the_license)
    for warning in result.warnings:
        warn(warning)
    for path in result.paths:
        say(f"pushed hf://{to}/{path}")
    say(f"use it with: {train_command(to, result.paths[0])}")


@cache_app.command("pull")
def cache_pull(
    repo: Annotated[str, typer.Argument(help="Hub model repo ORG/REPO holding pifi artifacts.")],
    paths: Annotated[Optional[list[str]], typer.Argument(help="Files to pull (default: every .safetensors).")] = None,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    quiet: QuietOpt = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Download artifacts from a Hub repo into the cache, verifying their hashes."""
    from layer_cache import pull

    with ByteProgress(quiet, "pulling") as progress:
        pulled = pull(repo, paths or None, revision=revision, token=token, cache_dir=cache_dir, progress=progress)
    for art in pulled:
        say(f"{'already cached' if art.hit else 'pulled'}: {art.reference}  {art.path}")


def _print_cache_table(entries: list, root: Path, total: int) -> None:
    import time

    from rich.table import Table

    from pifi_extract.inspect import human_bytes, human_count

    table = Table(title=f"pifi cache: {root}", title_justify="left")
    for col in ("source", "commit", "layer", "dtype", "params", "size", "last used", "reference"):
        table.add_column(col, justify="right" if col in ("layer", "params", "size") else "left", overflow="fold")
    for e in entries:
        commit = e.key.commit[:12] + (f" ({', '.join(e.refs)})" if e.refs else "")
        layer = f"{e.key.layer_index}/{e.num_layers}" if e.num_layers else str(e.key.layer_index)
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        source = e.key.source + (f" (pulled from {e.pulled_from})" if e.pulled_from else "")
        table.add_row(source, commit, layer, e.key.dtype, human_count(e.num_parameters), human_bytes(e.size), used, e.reference)
    out_console.print(table)
    say(f"{len(entries)} artifacts, {human_bytes(total)} in total")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
