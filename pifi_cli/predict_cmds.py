"""`pifi predict`: use a trained run (classify, answer questions, generate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DeviceOpt, TokenOpt, say


def predict(
    run_dir: Annotated[str, typer.Option("--run-dir", help="A finished run directory (one seed), or hf://ORG/REPO[@REV] pushed with `pifi push`.")],
    text: Annotated[Optional[list[str]], typer.Option("--text", help="Text to classify (repeat for several).")] = None,
    text_pair: Annotated[Optional[list[str]], typer.Option("--text-pair", help="Second text of each pair (runs trained on pairs).")] = None,
    question: Annotated[Optional[list[str]], typer.Option("--question", help="QA runs: a question (repeat; one --context each).")] = None,
    context: Annotated[Optional[list[str]], typer.Option("--context", help="QA runs: the passage holding the answer of each --question.")] = None,
    file: Annotated[Optional[str], typer.Option("--file", help="Texts to classify: .txt (one per line) or .csv/.tsv/.jsonl with the run's columns; accuracy is printed when labels are present.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write predictions as JSONL here instead of printing them.")] = None,
    layer_artifact: Annotated[Optional[list[str]], typer.Option("--layer-artifact", help="The run's artifact if it moved (its sha256 must match); repeat for a run with several layers, in order.")] = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")] = 64,
    token: TokenOpt = None,
) -> None:
    """Use a trained run: classify texts, answer --question/--context (QA runs) or generate (seq2seq runs)."""
    from pifi_train.run_record import load_run, open_run

    if output is not None:
        _check_predict_output(Path(output))  # every family: before any model loads
    opened = open_run(run_dir, token=token)  # hf://: downloaded (then cached); the family from its record
    family = opened.family.name
    if family != "qa" and (question or context):
        raise typer.BadParameter(f"--question/--context need a QA run; this is a {family} run", param_hint="--question")
    if family == "qa":
        if not question or len(question) != len(context or []):
            raise typer.BadParameter("a QA run answers --question Q --context C (one --context per --question)",
                                     param_hint="--question/--context")
    elif (file is None) == (not text):
        raise typer.BadParameter("pass --text (one or more) or --file", param_hint="--text/--file")
    if text_pair and family != "classification":
        raise typer.BadParameter(f"--text-pair is for classification runs; this is a {family} run",
                                 param_hint="--text-pair")
    loaded = load_run(opened, device=device, layer_artifact=list(layer_artifact or []) or None)
    if family == "qa":
        _predict_qa(loaded, list(question or []), list(context or []), output, batch_size)
    elif family == "seq2seq":
        _predict_seq2seq(loaded, text, file, output, batch_size)
    else:
        _predict_classification(loaded, text, text_pair, file, output, batch_size)


def _predict_classification(loaded, text: Optional[list[str]], text_pair: Optional[list[str]],  # type: ignore[no-untyped-def]
                            file: Optional[str], output: Optional[str], batch_size: int) -> None:
    from pifi_train.families.classification.predict import accuracy, label_names, predict as run_predict, read_inputs

    labels = None
    if file is not None:
        texts, pairs, labels = read_inputs(file, loaded)
    else:
        texts, pairs = list(text or []), (list(text_pair) if text_pair else None)
    predictions = run_predict(loaded, texts, pairs, batch_size=batch_size)
    records = [{"text": t, "label": p.label, "probabilities": p.probabilities} for t, p in zip(texts, predictions)]
    if output is not None:
        _write_jsonl(Path(output), records, "predictions")
    else:
        for t, p in zip(texts, predictions):
            probs = "  ".join(f"{name} {value:.4f}" for name, value in p.probabilities.items())
            typer.echo(f"{p.label}\t{probs}\t{t}")
    if labels is not None:
        say(f"accuracy {100 * accuracy(predictions, labels, label_names(loaded)):.2f}% on {len(labels)} labelled examples")


def _predict_qa(loaded, questions: list[str], contexts: list[str], output: Optional[str],  # type: ignore[no-untyped-def]
                batch_size: int) -> None:
    from pifi_train.families.qa.predict import answer

    answers = answer(loaded, questions, contexts, batch_size=batch_size)
    if output is not None:
        _write_jsonl(Path(output), [{"question": q, "answer": a.text, "score": a.score}
                                    for q, a in zip(questions, answers)], "answers")
    else:
        for q, a in zip(questions, answers):
            typer.echo(f"{a.text}\t{a.score:.4f}\t{q}")


def _predict_seq2seq(loaded, text: Optional[list[str]], file: Optional[str], output: Optional[str],  # type: ignore[no-untyped-def]
                     batch_size: int) -> None:
    """Generate with a seq2seq run: --text, or --file (.txt lines, or the run's source column; BLEU when targets)."""
    from pifi_train.families.seq2seq.metrics import generation_metrics
    from pifi_train.families.seq2seq.predict import generate
    from pifi_train.tables import read_lines, read_table

    references = None
    if file is None:
        texts = list(text or [])
    elif Path(file).suffix.lower() == ".txt":
        texts = read_lines(Path(file))
    else:
        rows = read_table(Path(file))
        source, target = loaded.options.source_column, loaded.options.target_column
        if source not in rows[0]:
            raise typer.BadParameter(f"{file} has no column {source!r}", param_hint="--file")
        texts = [str(r[source]) for r in rows]
        references = [str(r[target]) for r in rows] if target in rows[0] else None
    hypotheses = generate(loaded, texts, batch_size=batch_size)
    if output is not None:
        _write_jsonl(Path(output), [{"source": t, "hypothesis": h} for t, h in zip(texts, hypotheses)], "generations",
                     ensure_ascii=False)
    else:
        for t, h in zip(texts, hypotheses):
            typer.echo(f"{h}\t{t}")
    if references is not None:
        scores = generation_metrics(hypotheses, references)
        say(f"BLEU {scores['bleu']:.2f}  BLEU-avg {scores['bleu_avg']:.4f}  ROUGE-L {scores['rougeL']:.2f} "
            f"on {len(references)} references")


def _write_jsonl(path: Path, records: list[dict], noun: str, ensure_ascii: bool = True) -> None:
    """``predict -o``: one JSON object per line, then one line saying how many were written."""
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in records), encoding="utf-8")
    say(f"wrote {len(records)} {noun} to {path}")


def _check_predict_output(path: Path) -> None:
    """Refuse ``predict -o`` onto a folder or into a missing folder, before any prediction runs."""
    from pifi_extract.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"-o {path} is a folder", "pass a file name, e.g. -o predictions.jsonl")
    if not path.parent.is_dir():
        raise ConfigError(f"-o {path}: the folder {path.parent} does not exist", "create it first, or choose another -o")


def register(app: typer.Typer) -> None:
    app.command()(predict)
