"""The Table 3 / Table 4 tasks and the authors' other classification tasks: their split rules checked against
the libraries the authors used (pandas' ``sample``, scikit-learn's ``train_test_split``) on in-memory rows."""

from __future__ import annotations

import pytest

from pifi_extract.errors import ConfigError, CorruptFileError
from pifi_train.clean import resolve_cleaning
from pifi_train.families.classification.extra_tests import map_labels
from pifi_train.families.classification.task_splits import (Holdout, Take, permutation, select,
                                                            train_test_split_indices)
from pifi_train.families.classification.raw_files import RawFiles, fetch_raw_files, read_raw_file
from pifi_train.families.classification.tasks import TASKS, assemble_task, get_task


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 11, 99, 1000, 1001])
@pytest.mark.parametrize("test_size,random_state", [(0.2, 42), (0.5, 42), (0.1, 0), (0.33, 7)])
def test_train_test_split_matches_sklearn(n, test_size, random_state):
    sklearn = pytest.importorskip("sklearn.model_selection")
    if n < 2:
        with pytest.raises(ValueError):
            sklearn.train_test_split(list(range(n)), test_size=test_size, random_state=random_state)
        return
    train, test = sklearn.train_test_split(list(range(n)), test_size=test_size, random_state=random_state)
    assert train_test_split_indices(n, test_size, random_state) == (list(train), list(test))


@pytest.mark.parametrize("n,seed", [(10, 2023), (257, 2023), (1000, 5)])
def test_numpy_shuffle_is_pandas_sample_after_np_random_seed(n, seed):
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    np.random.seed(seed)  # what the authors' set_random_seed does before preprocessing
    shuffled = pd.DataFrame({"i": range(n)}).sample(frac=1).reset_index(drop=True)
    assert permutation(n, seed, "numpy") == shuffled["i"].tolist()
    assert permutation(n, seed, "python") != permutation(n, seed, "numpy")


def _rows(n, labels=None, text="text"):
    return {text: [f"{text}{i}" for i in range(n)], "label": labels or [i % 2 for i in range(n)]}


def _named(n, names):
    rows = _rows(n)
    rows["label_text"] = [names[label] for label in rows["label"]]
    return rows


def test_cr_validation_is_the_authors_first_fifth_of_the_sampled_train():
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    raw = {"train": _named(53, ["negative", "positive"]), "test": _named(9, ["negative", "positive"])}
    data = assemble_task(get_task("cr"), raw, seed=2023)
    np.random.seed(2023)
    frame = pd.DataFrame(raw["train"]).sample(frac=1).reset_index(drop=True)  # their steps, their seed
    cut = int(len(frame) * 0.2)
    assert data.validation.texts == frame["text"][:cut].tolist()
    assert data.train.texts == frame["text"][cut:].tolist()
    assert data.test.texts == raw["test"]["text"] and data.label_names == ["negative", "positive"]


def test_a_label_name_column_that_disagrees_with_the_table_is_refused():
    raw = {"train": _named(10, ["objective", "subjective"]), "test": _named(4, ["subjective", "objective"])}
    with pytest.raises(ConfigError, match="labelled 'subjective' but pifi's task table calls label 0 'objective'"):
        assemble_task(get_task("subj"), raw, seed=0)


def _film_rows(n=140):
    ratings = [str(i % 6) for i in range(n)]  # 0..5 as strings (a TSV read as text)
    ratings[5], ratings[17] = None, "4.0"
    texts = [f"Kritik {i}" for i in range(n)]
    texts[8] = None  # a missing review: dropped, as the authors' dropna
    return {"address": [f"u{i}" for i in range(n)], "label": ratings, "text": texts}


def test_filmstarts_maps_ratings_drops_3_and_missing_then_splits_80_10_10():
    rows = _film_rows()
    data = assemble_task(get_task("filmstarts"), {"train": rows}, seed=2023)
    kept = [i for i in range(140) if rows["label"][i] not in (None, "3") and rows["text"][i] is not None]
    assert len(kept) == 115  # 140 rows - 23 ratings of 3 - the missing rating - the missing text
    assert (len(data.train), len(data.validation), len(data.test)) == (92, 11, 12)  # ceil(.2·115)=23: 11 + ceil(23/2)
    assert sorted(data.train.texts + data.validation.texts + data.test.texts) == sorted(rows["text"][i] for i in kept)
    split_rows = [(t, y) for part in (data.train, data.validation, data.test) for t, y in zip(part.texts, part.labels)]
    assert dict(split_rows)["Kritik 17"] == 1 and dict(split_rows)["Kritik 12"] == 0  # "4.0" -> positive; 0 -> negative
    assert all((float(rows["label"][int(t.split()[1])]) >= 4) == bool(y) for t, y in split_rows)


def test_filmstarts_reproduces_the_authors_pandas_and_sklearn_steps():
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    model_selection = pytest.importorskip("sklearn.model_selection")
    rows = _film_rows(301)
    data = assemble_task(get_task("filmstarts"), {"train": rows}, seed=2023)
    # the authors' preprocessing, step by step (dropna, astype(int), map 0-2/4-5, dropna, sample, split twice)
    frame = pd.DataFrame(rows).dropna(subset=["label", "text"])
    frame["label"] = frame["label"].astype(float).astype(int)
    frame["label"] = frame["label"].map({0: 0, 1: 0, 2: 0, 4: 1, 5: 1})
    frame = frame.dropna(subset=["label"])
    np.random.seed(2023)
    frame = frame.sample(frac=1).reset_index(drop=True)
    train, rest = model_selection.train_test_split(frame, test_size=0.2, random_state=42)
    valid, test = model_selection.train_test_split(rest, test_size=0.5, random_state=42)
    assert data.train.texts == train["text"].tolist() and data.train.labels == train["label"].astype(int).tolist()
    assert data.validation.texts == valid["text"].tolist()
    assert data.test.texts == test["text"].tolist() and data.test.labels == test["label"].astype(int).tolist()


def test_a_label_that_is_not_a_number_is_one_line():
    rows = _film_rows(20)
    rows["label"][3] = "gut"
    with pytest.raises(ConfigError, match="label 'gut' is not a number"):
        assemble_task(get_task("filmstarts"), {"train": rows}, seed=0)


def test_missing_columns_are_named():
    with pytest.raises(ConfigError, match="has no column"):
        assemble_task(get_task("nsmc"), {"train": _rows(10), "test": _rows(4)}, seed=0)


def test_holdouts_compose_in_order():
    rows = list(range(100, 110))
    _, test = train_test_split_indices(10, 0.5, 1)
    assert select(Take("train", holdouts=(Holdout(0.5, 1, "test"),)), rows, seed=0) == [rows[i] for i in test]
    twice = select(Take("train", holdouts=(Holdout(0.5, 1, "test"), Holdout(0.4, 3, "train"))), rows, seed=0)
    train2, _ = train_test_split_indices(5, 0.4, 3)
    assert twice == [[rows[i] for i in test][j] for j in train2]


def test_nsmc_reads_its_header_file_and_keeps_empty_documents(tmp_path):
    pytest.importorskip("pandas")
    files = TASKS["nsmc"].files
    path = tmp_path / "ratings_train.txt"
    path.write_text("id\tdocument\tlabel\n1\t좋아요\t1\n2\t\t0\n3\t\"따옴표\" 영화\t0\n", encoding="utf-8")
    table = read_raw_file(path, files)
    # CSV quoting as pandas (and Python's csv module) apply it: a leading quoted part loses its quotes
    assert table["document"] == ["좋아요", None, "따옴표 영화"] and table["label"] == ["1", "0", "0"]
    data = assemble_task(get_task("nsmc"), {"train": {**table}, "test": {**table}}, seed=0)
    assert sorted(data.test.texts) == sorted(["좋아요", "", "따옴표 영화"])  # the empty review stays, as ""


def test_filmstarts_file_skips_lines_with_too_many_fields(tmp_path):
    pytest.importorskip("pandas")
    path = tmp_path / "filmstarts.tsv"
    path.write_text("u1\t5\tToll\nu2\t1\tSchlecht\textra field\nu3\t\tohne Wertung\nu4\t3\tGeht so\n", encoding="utf-8")
    table = read_raw_file(path, TASKS["filmstarts"].files)
    assert table == {"address": ["u1", "u3", "u4"], "label": ["5", None, "3"],
                     "text": ["Toll", "ohne Wertung", "Geht so"]}


def test_a_downloaded_file_with_another_sha256_is_refused(tmp_path):
    from types import SimpleNamespace

    path = tmp_path / "filmstarts.tsv"
    path.write_text("u1\t5\tToll\n", encoding="utf-8")
    manager = SimpleNamespace(download=lambda url: str(path))  # the download itself is datasets' job
    fake = SimpleNamespace(DownloadConfig=lambda cache_dir: None, DownloadManager=lambda download_config: manager)
    with pytest.raises(CorruptFileError, match="not the file the authors used"):
        fetch_raw_files(TASKS["filmstarts"].files, fake, None)


def test_raw_file_tasks_name_a_pinned_source():
    film = TASKS["filmstarts"].files
    assert film.sha256["train"] in {"c3dae615495418f07c768cf2fea85ab3266065f8208c246ad56e57f250e1b0e3"}
    assert all(url.startswith("https://") for spec in TASKS.values() if spec.files for url in spec.files.urls.values())
    assert isinstance(film, RawFiles) and film.skip_bad_lines and not film.header


SENTIMENT = ["imdb", "tweet_sentiment_binary", "cr", "sst2", "mr", "nsmc", "filmstarts"]


@pytest.mark.parametrize("train_task", SENTIMENT)
@pytest.mark.parametrize("test_task", SENTIMENT)
def test_domain_shift_pairs_match_labels_by_name(train_task, test_task):
    """Table 3: train on one sentiment set, --extra-test another; negative stays negative."""
    mapping = map_labels(TASKS[test_task].label_names, TASKS[train_task].label_names, test_task)
    assert mapping == {0: 0, 1: 1}


def test_classification_tasks_are_cleaned_as_the_authors_except_nli():
    for name, spec in TASKS.items():
        expected = "none" if spec.text_pair_column else "html"
        assert resolve_cleaning("auto", name) == expected, name


def test_every_task_row_is_consistent():
    for spec in TASKS.values():
        assert sorted(set(spec.label_ids.values())) == list(range(len(spec.label_names))), spec.name
        for take in (spec.train, spec.validation, spec.test):
            assert take.shuffle in ("python", "numpy")
            assert spec.files is None or take.split in spec.files.urls, spec.name


def test_raw_files_come_through_datasets_download_cache(tmp_path):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("pandas")
    import hashlib

    path = tmp_path / "film.tsv"
    path.write_text("u1\t5\tToll\nu2\t0\tMies\n", encoding="utf-8")
    files = RawFiles({"train": str(path)}, ("address", "label", "text"), header=False,
                     sha256={"train": hashlib.sha256(path.read_bytes()).hexdigest()}, skip_bad_lines=True)
    raw = fetch_raw_files(files, datasets, str(tmp_path / "cache"))
    assert raw == {"train": {"address": ["u1", "u2"], "label": ["5", "0"], "text": ["Toll", "Mies"]}}
