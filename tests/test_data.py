"""Local data files, label mapping, seeded splits and the built-in task table (offline)."""

import json

import pytest
import torch

from pifi_extract.errors import ConfigError, SourceNotFoundError
from pifi_train.families.classification.data import Examples, load_local_task
from pifi_train.families.classification.trainer import Collator
from pifi_train.splits import seeded_holdout as seeded_split
from pifi_train.families.classification.tasks import TASKS, assemble_task, get_task, load_builtin_task, needed_splits, task_names
from train_fixtures import synthetic_rows, tokenizer_for, write_csv, write_jsonl


def test_csv_tsv_jsonl_read_alike(tmp_path):
    rows = synthetic_rows(20, seed=1)
    loaded = [
        load_local_task(write_csv(tmp_path / "a.csv", rows), None, None, seed=3),
        load_local_task(write_csv(tmp_path / "a.tsv", rows, delimiter="\t"), None, None, seed=3),
        load_local_task(write_jsonl(tmp_path / "a.jsonl", rows), None, None, seed=3),
    ]
    for data in loaded:
        assert data.label_names == ["0", "1"]
        assert (data.train.texts, data.validation.texts) == (loaded[0].train.texts, loaded[0].validation.texts)
        assert data.train.labels == loaded[0].train.labels
    assert len(loaded[0].validation) == 4 and len(loaded[0].train) == 16 and loaded[0].test is None


def test_string_labels_are_mapped_alphabetically_and_applied_to_every_split(tmp_path):
    rows = synthetic_rows(30, seed=2, string_labels=True)
    train = write_jsonl(tmp_path / "train.jsonl", rows[:20])
    test = write_csv(tmp_path / "test.csv", rows[20:])
    data = load_local_task(train, train, test)
    assert data.label_names == ["neg", "pos"]
    assert data.test.labels == [1 if r["label"] == "pos" else 0 for r in rows[20:]]
    assert data.source["files"]["test"] == str(test)


def test_integer_labels_sort_numerically(tmp_path):
    rows = [{"text": f"t{i}", "label": label} for i, label in enumerate([10, 2, 2, 10, 1, 1, 2, 10, 1, 2])]
    data = load_local_task(write_jsonl(tmp_path / "t.jsonl", rows), None, None, validation_fraction=0.3)
    assert data.label_names == ["1", "2", "10"]


def test_seeded_split_is_deterministic_and_disjoint():
    examples = Examples([f"t{i}" for i in range(50)], None, [i % 2 for i in range(50)])
    rest, held = seeded_split(examples, 0.2, seed=7)
    again_rest, again_held = seeded_split(examples, 0.2, seed=7)
    other = seeded_split(examples, 0.2, seed=8)[1]
    assert held.texts == again_held.texts and rest.texts == again_rest.texts
    assert len(held) == 10 and not set(held.texts) & set(rest.texts)
    assert held.texts != other.texts


def test_pair_columns(tmp_path):
    rows = synthetic_rows(10, seed=3, pair=True)
    data = load_local_task(write_jsonl(tmp_path / "p.jsonl", rows), None, None, text_pair_column="text2")
    assert data.train.pairs is not None and len(data.train.pairs) == len(data.train.texts)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "no rows"),
        ('{"text": "a", "label": 0}\n{"text": "b"}\n', "no value in column 'label'"),
        ('{"text": "a", "label": 0.5}\n', "does not parse"),
        ('{"text": "a", "label": "1.5"}\n', "does not parse"),
        ('{"text": "a", "label": ""}\n', "does not parse"),
        ('{"sentence": "a", "label": 1}\n', "no column 'text'"),
        ("not json\n", "is not JSON"),
    ],
)
def test_bad_files_are_one_line_config_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_local_task(path, None, None)
    assert "\n" not in info.value.one_line()


def test_missing_file_and_unseen_label(tmp_path):
    with pytest.raises(SourceNotFoundError):
        load_local_task(tmp_path / "nope.csv", None, None)
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    valid = write_jsonl(tmp_path / "valid.jsonl", [{"text": "c", "label": "z"}])
    with pytest.raises(ConfigError, match="never occurs in the training file"):
        load_local_task(train, valid, None)


def test_collator_pads_and_keeps_only_inputs_the_model_accepts(tmp_path):
    tokenizer = tokenizer_for(tmp_path)
    examples = Examples(["good", "w1 w2 w3 w4"], ["plot", "bad"], [1, 0])
    batch = Collator(examples, tokenizer, 6, {"input_ids", "attention_mask"})([0, 1])
    assert set(batch) == {"input_ids", "attention_mask", "labels", "index"}
    assert batch["input_ids"].shape == (2, 6)  # truncated to max_length
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 1, 0]  # [CLS] good [SEP] plot [SEP] [PAD]
    assert torch.equal(batch["labels"], torch.tensor([1, 0]))
    with_types = Collator(examples, tokenizer, 16, {"input_ids", "attention_mask", "token_type_ids"})([0])
    assert with_types["token_type_ids"][0].tolist() == [0, 0, 0, 1, 1]


# ---- built-in tasks (the table, applied to in-memory rows) ---------------------------------------


def _raw(n, labels=None, text="text", pair=None):
    labels = labels or [i % 2 for i in range(n)]
    table = {text: [f"{text}{i}" for i in range(n)], "label": labels}
    if pair:
        table[pair] = [f"{pair}{i}" for i in range(n)]
    return table


def test_table_has_the_papers_tasks():
    assert task_names() == sorted(["sst2", "imdb", "tweet_sentiment_binary", "tweet_offensive", "cola", "mnli", "snli"])
    assert TASKS["imdb"].path == "stanfordnlp/imdb" and TASKS["cola"].config_name == "cola"


def test_unknown_task_lists_known_ones():
    with pytest.raises(ConfigError, match="known tasks: cola, imdb, mnli"):
        get_task("sst3")


def test_imdb_and_cola_split_train_80_20_by_seed():
    spec = get_task("imdb")
    raw = {"train": _raw(100), "test": _raw(30)}
    data = assemble_task(spec, raw, seed=5)
    assert (len(data.train), len(data.validation), len(data.test)) == (80, 20, 30)
    assert not set(data.train.texts) & set(data.validation.texts)
    assert assemble_task(spec, raw, seed=5).validation.texts == data.validation.texts
    assert assemble_task(spec, raw, seed=6).validation.texts != data.validation.texts
    cola = assemble_task(get_task("cola"), {"train": _raw(50, text="sentence"), "validation": _raw(7, text="sentence")}, 1)
    assert (len(cola.train), len(cola.validation), len(cola.test)) == (40, 10, 7)  # test = GLUE validation


def test_tweet_sentiment_binary_drops_neutral_and_maps_positive():
    raw = {s: _raw(6, labels=[0, 1, 2, 2, 1, 0]) for s in ("train", "validation", "test")}
    data = assemble_task(get_task("tweet_sentiment_binary"), raw, seed=0)
    assert data.train.labels == [0, 1, 1, 0]
    assert data.train.texts == ["text0", "text2", "text3", "text5"]


def test_mnli_validation_is_the_tail_of_train_sized_like_mismatched():
    pair = dict(text="premise", pair="hypothesis")
    raw = {"train": _raw(20, labels=[i % 3 for i in range(20)], **pair),
           "validation_mismatched": _raw(4, labels=[0, 1, 2, 0], **pair)}
    data = assemble_task(get_task("mnli"), raw, seed=0)
    assert data.train.texts == [f"premise{i}" for i in range(16)]
    assert data.validation.texts == [f"premise{i}" for i in range(16, 20)]
    assert data.test.pairs == [f"hypothesis{i}" for i in range(4)]
    assert needed_splits(get_task("mnli")) == ["train", "validation_mismatched"]


def test_snli_drops_labels_outside_0_to_2():
    pair = dict(text="premise", pair="hypothesis")
    raw = {s: _raw(5, labels=[0, -1, 2, 1, -1], **pair) for s in ("train", "validation", "test")}
    data = assemble_task(get_task("snli"), raw, seed=0)
    assert data.test.labels == [0, 2, 1] and data.label_names == ["entailment", "neutral", "contradiction"]


def test_builtin_task_without_datasets_library_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(ConfigError, match=r"pifi\[datasets\]"):
        load_builtin_task("sst2", seed=0)


def test_quoted_csv_fields_keep_their_line_breaks(tmp_path):
    from pifi_train.tables import read_table

    path = tmp_path / "multi.csv"
    path.write_text('text,label\n"mildly\nintrigued",pos\nplain,neg\n', encoding="utf-8")
    rows = read_table(path)
    assert [r["text"] for r in rows] == ["mildly\nintrigued", "plain"]
    assert [r["label"] for r in rows] == ["pos", "neg"]
