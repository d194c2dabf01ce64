"""Tables 16 and 20, which train nothing: each configuration the paper lists, counted by ``pifi cost`` from the
typed-in configs (:mod:`pifi_train.known_configs`: nothing downloaded), beside the paper's numbers.

Table 16: one forward of 32 inputs × 100 tokens in fp32 (the paper's setting), in fvcore's unit (GMACs: what the
paper calls GFLOPs) and the estimated peak memory (weights + live activations; the paper's GPU profiler also counts
the CUDA context and the allocator's cache, so only the difference compares). Table 20: parameters per module,
in millions. The configurations are the rows of ``numbers.csv`` for the table. Torch is imported by the count.
"""

from __future__ import annotations

import re

from .grid import Table
from .names import MODELS
from .numbers import METRICS, paper_numbers, paper_value
from .render import Line, Rendering

COST_TABLES = ("16", "20")
_PIFI_ROW = re.compile(r"^\+ PiFi \((?P<llm>[^)]+)\)$")
_KIND_FAMILY = {"encoder": "classification", "decoder": "classification", "seq2seq": "seq2seq"}


def cost_configurations(table: Table) -> list[tuple[str, str, str | None]]:
    """(SLM, the paper's row, its LLM or None for the base SLM) of every row the paper gives, in its order."""
    seen: dict[tuple[str, str], str | None] = {}
    for number in paper_numbers():
        if number.table == table.key and (number.slm, number.row) not in seen:
            found = _PIFI_ROW.match(number.row)
            seen[(number.slm, number.row)] = found["llm"] if found else None
    return [(slm, row, llm) for (slm, row), llm in seen.items()]


def _values(count) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The table's metrics of one counted arm (a ``ForwardCount``)."""
    millions = {f"params_{module}_m": n / 1e6 for module, n in count.parameters.items()}  # slm, l_in, layer, ...
    return {"gflops": count.paper_macs / 1e9, "memory_gb": count.peak_bytes / 1e9, **millions}


def render_cost_table(table: Table) -> Rendering:
    """Count every configuration of Table 16 or 20 and lay the counts beside the paper's numbers."""
    from ..cost import measure, target_from_config
    from ..cost_spec import CostOptions

    lines: list[Line] = []
    configurations = cost_configurations(table)
    for slm, row, llm in configurations:
        model = MODELS[slm]
        target = target_from_config(model.hub_id, llm=MODELS[llm].hub_id if llm else None,
                                    task_type=_KIND_FAMILY[model.kind])
        report = measure(target, CostOptions())
        arm = next(a for a in report.arms if a.arm == ("pifi" if llm else "base"))
        values = _values(arm.count)
        for metric in table.metrics:
            paper = paper_value(table.key, slm, row, "", metric)
            if paper is None:
                continue
            spec = METRICS[metric]
            mine = values[metric]
            lines.append(Line(slm, row, spec.label, [f"{mine:.{spec.digits}f} / {paper.value}",
                                                     f"{mine - paper.number:+.{spec.digits}f}"]))
    notes = ["pifi's count / the paper's number; counted on the meta device from the models' configs (nothing "
             "downloaded), one forward of 32 × 100 tokens in float32 (`pifi cost --slm SLM --llm LLM`)"]
    if table.key == "16":
        notes.append("GFLOPs in the paper's unit (fvcore: one per multiply-add of the linear layers, no attention); "
                     "memory: pifi's estimate (weights + live activations), the paper's a GPU profile (with the CUDA "
                     "context and the allocator's cache): compare the differences, +0.94 GB in the paper")
    if table.key == "20":
        notes.append("the paper's T5-base row is printed one column to the right (its 222.904 is T5-base's SLM "
                     "parameters, its 218.112 the layer's): read here in the columns it belongs to")
        notes.append("L_in and L_out hold 768 × H + H parameters for an LLM of hidden size H: the paper prints "
                     "Llama-3.1-8B's 3.146 (H = 4096) for Qwen2-7B and Gemma-2-9B (H = 3584: 2.753) and Falcon-7B "
                     "(H = 4544: 3.490)")
    return Rendering(table, ["SLM", "row", "metric", "pifi / paper", "difference"], lines, len(configurations),
                     len(configurations), notes)
