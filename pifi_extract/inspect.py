"""Human- and machine-readable descriptions of an artifact (used by `pifi inspect` and the CLI summaries)."""

from __future__ import annotations

from typing import Any

from .artifact import ArtifactInfo

# Config fields that decide how the layer runs; shown first by `pifi inspect`.
LAYER_CONFIG_KEYS = (
    "model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
    "hidden_act", "rms_norm_eps", "layer_norm_eps", "norm_eps", "rope_theta", "rope_scaling", "rope_parameters",
    "partial_rotary_factor", "rotary_pct", "max_position_embeddings", "sliding_window", "layer_types",
    "attention_bias", "attn_logit_softcapping", "query_pre_attn_scalar", "alibi", "new_decoder_architecture",
    "parallel_attn", "use_parallel_residual",
)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def human_count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def summary_line(info: ArtifactInfo) -> str:
    """One line: architecture, layer, parameters, size, dtype, source."""
    p = info.provenance
    commit = f"@{str(p['commit'])[:10]}" if p.get("commit") else ""
    return (
        f"{info.model_type} layer {info.layer_index} of {info.num_layers} (asked {p.get('layer_requested')}) · "
        f"{human_count(info.num_parameters)} params · {human_bytes(info.size)} · {p.get('dtype')} · "
        f"from {p.get('source')}{commit}"
    )


def describe(info: ArtifactInfo) -> dict[str, Any]:
    """Everything in the artifact's header, as plain JSON-able data."""
    p = info.provenance
    return {
        "path": str(info.path),
        "summary": {
            "architecture": info.model_type,
            "layer": f"{info.layer_index} of {info.num_layers} (requested {p.get('layer_requested')})",
            "parameters": f"{info.num_parameters:,}",
            "size": human_bytes(info.size),
            "dtype": p.get("dtype"),
            "source dtype": p.get("source_dtype"),
            "source": f"{p.get('source')} ({p.get('source_kind')})",
            "revision": p.get("revision") or "-",
            "commit": p.get("commit") or "-",
            "license": p.get("license") or "unknown",
            "data sha256": info.data_sha256,
            "format": f"v{info.format_version}, written by pifi {info.pifi_version}",
        },
        "format_version": info.format_version,
        "pifi_version": info.pifi_version,
        "data_sha256": info.data_sha256,
        "size_bytes": info.size,
        "num_parameters": info.num_parameters,
        "provenance": p,
        "layer_config": {k: info.config[k] for k in LAYER_CONFIG_KEYS if k in info.config},
        "config": info.config,
        "tensors": {name: [dt, list(shape)] for name, (dt, shape) in sorted(info.tensors.items())},
    }
