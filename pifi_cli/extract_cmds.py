"""`pifi extract` and `pifi inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import ByteProgress, CacheDirOpt, JsonOpt, QuietOpt, RevisionOpt, TokenOpt, err_console, say

DTYPES = ("keep", "bf16", "fp16", "fp32")


def extract(
    llm: Annotated[str, typer.Option("--llm", help="Hub repo id (org/name), a local folder with config.json + *.safetensors, or a local .gguf file.")],
    layer: Annotated[list[int], typer.Option("--layer", help="Layer index; negative counts from the end (-1 = last). Repeat for several layers: one artifact each.")],
    revision: RevisionOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also place the artifact here: a file (one layer) or folder (several layers).")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="keep | bf16 | fp16 | fp32 (floating tensors only).")] = "keep",
    token: TokenOpt = None,
    quiet: QuietOpt = False,
    cache_dir: CacheDirOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Bypass the cache: write only the --output file(s).")] = False,
    gguf_file: Annotated[Optional[str], typer.Option("--gguf-file", help="Read this .gguf file of the --llm repo or folder (dequantized; cached as ORG/REPO/FILE.gguf).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only plan: resolve the commit, read config/index/shard headers, print tensors, bytes to read, shards, licence and gating.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Read ONE decoder layer of an LLM (only its bytes) into a small standalone artifact, kept in the pifi cache."""
    if dry_run:
        from pifi_extract.dry_run import dry_run as plan_only

        return _print_dry_run(plan_only(llm, layer, revision=revision, dtype=dtype, token=token, gguf_file=gguf_file),
                              as_json)
    from layer_cache.get_or_extract import protected_places
    from pifi_extract.artifact import read_artifact
    from pifi_extract.extract import artifact_file_name, extract_layers
    from pifi_extract.writer import check_output_target, refuse_inside

    if dtype not in DTYPES:
        raise typer.BadParameter("choose keep, bf16, fp16 or fp32", param_hint="--dtype")
    protected = protected_places(llm, gguf_file=gguf_file, cache_dir=cache_dir)
    if output is not None:  # the cache, the source, a device, FIFO or socket: refused before anything is written
        refuse_inside(output, protected)
        if not output.is_dir():
            check_output_target(output)
    several = len(layer) > 1

    def output_for(index: int) -> Path:
        name = artifact_file_name(gguf_file or llm, index, dtype)
        if output is None:
            path = Path.cwd() / name
        else:
            path = output / name if several or output.is_dir() else output
        check_output_target(path, protected)
        return path

    if no_cache:
        with ByteProgress(quiet, "extracting") as progress:
            results = extract_layers(llm, layer, lambda plan: output_for(plan.layer_index), revision=revision,
                                     token=token, dtype=dtype, progress=progress, gguf_file=gguf_file)
        for result in results:
            _print_summary(result.path, result.info)
        return
    from layer_cache import get_or_extract_layers, place_copy

    def waiting() -> None:
        err_console.print("another process is extracting this layer into the cache; waiting for it…", highlight=False)

    with ByteProgress(quiet, "extracting") as progress:
        artifacts = get_or_extract_layers(llm, layer, revision=revision, dtype=dtype, token=token, cache_dir=cache_dir,
                                          progress=progress, on_wait=waiting, gguf_file=gguf_file)
    for art in artifacts:
        path = art.path if output is None else place_copy(art.path, output_for(art.key.layer_index), protected)
        _print_summary(path, read_artifact(path))
        origin = f" (pulled from {art.pulled_from}: not extracted here)" if art.pulled_from else ""
        say(f"{'from the cache' if art.hit else 'stored in the cache'}: {art.reference}{origin}")


def inspect(
    artifact: Annotated[str, typer.Argument(help="Artifact: a file, a cache key (org/name:-1, org/name@rev:-1) or hf://ORG/REPO/path.")],
    as_json: JsonOpt = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Show an artifact's provenance, config and tensors."""
    from layer_cache import artifact_path
    from pifi_extract.artifact import read_artifact
    from pifi_extract.inspect import describe

    info = read_artifact(artifact_path(artifact, cache_dir=cache_dir))
    if as_json:
        import json

        typer.echo(json.dumps(describe(info), indent=2, sort_keys=True))
        return
    _print_inspect(info)


def _print_dry_run(result: object, as_json: bool) -> None:
    from rich.table import Table

    from .common import out_console as out

    if as_json:
        import json

        typer.echo(json.dumps(result.to_dict(), indent=2))  # type: ignore[attr-defined]
        return
    r = result
    say(f"{r.source} ({r.source_kind}) commit {r.commit or '-'}; licence {r.license or 'unknown'}; "  # type: ignore[attr-defined]
        f"gated {r.gated if r.gated is not None else 'unknown'}; licence files: {', '.join(r.license_files) or 'none'}")  # type: ignore[attr-defined]
    for layer in r.layers:  # type: ignore[attr-defined]
        table = Table(title=f"layer {layer.layer_index}: {layer.source_bytes:,} bytes to read from "
                            f"{len(layer.shards)} shard(s), artifact {layer.artifact_bytes:,} bytes", title_justify="left")
        for col in ("name", "dtype", "shape", "file", "bytes"):
            table.add_column(col, justify="right" if col == "bytes" else "left")
        for t in layer.tensors:
            table.add_row(t["name"], t["dtype"], "×".join(map(str, t["shape"])) or "scalar", str(t["file"] or "-"),
                          f"{t['bytes']:,}")
        out.print(table)
    say(f"dry run: {r.source_bytes} tensor bytes would be read; nothing was downloaded or written")  # type: ignore[attr-defined]


def _print_summary(path: Path, info: object) -> None:
    from pifi_extract.inspect import summary_line

    say(str(path))
    say(summary_line(info))


def _print_inspect(info: object) -> None:
    from rich.table import Table

    from pifi_extract.inspect import describe

    from .common import out_console as out

    data = describe(info)
    out.print(f"[bold]{data['path']}[/]", highlight=False)
    table = Table(show_header=False, box=None)
    for key, value in data["summary"].items():
        table.add_row(f"[cyan]{key}[/]", str(value))
    out.print(table)
    tensors = Table(title="tensors", title_justify="left")
    for col in ("name", "dtype", "shape"):
        tensors.add_column(col)
    for name, (dt, shape) in data["tensors"].items():
        tensors.add_row(name, dt, "×".join(map(str, shape)) or "scalar")
    out.print(tensors)
    out.print("[bold]config[/] (complete config.json of the source model; --json prints it)")
    say(", ".join(f"{k}={v}" for k, v in data["layer_config"].items()))


def register(app: typer.Typer) -> None:
    app.command()(extract)
    app.command()(inspect)
