"""The validation-curve PNG of ``pifi report`` and ``pifi demo`` (matplotlib: ``pifi[plot]``)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Mapping, Sequence

from pifi_extract.errors import ConfigError
from pifi_extract.outputs import write_output


# one colour per arm, the same in every plot (matplotlib's default cycle C0..C9): base blue, PiFi orange,
# PiFi with the post-norm green, LoRA red; other lines take the next free colours (the arms' last)
ARM_COLORS = {("base", "raw"): "C0", ("pifi", "raw"): "C1", ("pifi", "post-norm"): "C2", ("lora", "raw"): "C3"}


def arm_color(method: str, post_norm: bool | str = False) -> str | None:
    """The colour of an arm (``method``, post-norm or not: a bool or report's "post-norm"/"raw"), None if unlisted."""
    norm = "post-norm" if post_norm in (True, "post-norm") else "raw"
    return ARM_COLORS.get((method, norm))


def plot_validation_curves(curves: Mapping[str, Sequence[Sequence[float]]], path: Path, title: str | None = None,
                           size: tuple[float, float] = (7, 4.5), legend_size: int = 7,
                           colors: Sequence[str | None] | None = None,
                           ylabel: str = "validation accuracy (%)") -> Path:
    """One line per label: a validation metric (fractions, shown ×100) per epoch, mean over its seeds' curves;
    ``colors`` (one per label, e.g. :func:`arm_color`; None, or a colour already taken: the next unused one of the
    cycle, other arms' colours last) keeps an arm's colour across plots."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ConfigError("plotting needs matplotlib", "pip install 'pifi[plot]', or drop --plot") from err
    fig, ax = plt.subplots(figsize=size)
    chosen = list(colors) if colors is not None else [None] * len(curves)
    chosen = [c if c not in chosen[:i] else None for i, c in enumerate(chosen)]  # two lines never share one
    cycle = sorted((f"C{i}" for i in range(10)), key=lambda c: c in ARM_COLORS.values())  # arms' colours last
    free = iter(c for c in cycle if c not in chosen)
    for (label, members), color in zip(curves.items(), chosen):
        length = min(len(c) for c in members)
        mean = [100 * statistics.fmean(c[i] for c in members) for i in range(length)]
        ax.plot(range(1, length + 1), mean, marker="o", label=label, color=color or next(free, None))
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
    try:  # atomically: a full disk or an error never leaves half a PNG
        write_output(path, lambda fh: fig.savefig(fh, dpi=120, format=path.suffix.lstrip(".") or "png"), "--plot")
    finally:
        plt.close(fig)
    return path
