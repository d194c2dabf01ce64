"""The validation-curve PNG of ``pifi report`` and ``pifi demo`` (matplotlib: ``pifi[plot]``)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Mapping, Sequence

from pifi_extract.errors import ConfigError


def plot_validation_curves(curves: Mapping[str, Sequence[Sequence[float]]], path: Path, title: str | None = None,
                           size: tuple[float, float] = (7, 4.5), legend_size: int = 7,
                           ylabel: str = "validation accuracy (%)") -> Path:
    """One line per label: a validation metric (fractions, shown ×100) per epoch, mean over its seeds' curves."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("plotting needs matplotlib", "pip install 'pifi[plot]', or pass --no-plot") from err
    fig, ax = plt.subplots(figsize=size)
    for label, members in curves.items():
        length = min(len(c) for c in members)
        mean = [100 * statistics.fmean(c[i] for c in members) for i in range(length)]
        ax.plot(range(1, length + 1), mean, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
