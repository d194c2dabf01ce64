"""Which pairs of layers the fast search trains (the paper's Table 14 plugs two LLM layers), pruned by the
single-layer ranking: pure functions, no torch.

A pair is two distinct layers in model order ``(a, b)``, ``a < b``: the plugged vector crosses a, then b.
A model of L layers has L·(L−1)/2 of them; the search trains only

* ``top:K``: every pair among the K best single layers (K·(K−1)/2 pairs);
* ``adjacent:K``: each of the K best single layers with its neighbour before and after it (≤ 2K pairs; the
  neighbours need not have been scored alone).
"""

from __future__ import annotations

from typing import Sequence


def total_pairs(num_layers: int) -> int:
    """Every pair of two distinct layers in model order."""
    return num_layers * (num_layers - 1) // 2


def plan_pairs(ranked: Sequence[int], mode: str, k: int, num_layers: int) -> list[tuple[int, int]]:
    """The pairs to train, given the single layers best first (distinct indices), sorted by (a, b)."""
    best = list(dict.fromkeys(ranked))[:k]
    if mode == "top":
        pairs = {(min(a, b), max(a, b)) for i, a in enumerate(best) for b in best[i + 1:]}
    elif mode == "adjacent":
        pairs = {(i + d, i + d + 1) for i in best for d in (-1, 0) if 0 <= i + d and i + d + 1 < num_layers}
    else:
        raise ValueError(f"unknown pair mode {mode!r}")
    return sorted(pairs)


def pair_name(pair: Sequence[int]) -> str:
    return "+".join(str(i) for i in pair)
