"""The paper's built-in tasks, as data: where each lives and how it is split.

Each :class:`TaskSpec` row says which dataset to read (a Hugging Face dataset, or raw files the authors read
outside the Hub: :class:`RawFiles`), which columns hold the text(s) and the label, which raw labels to keep
(and their ids), and how the train / validation / test splits are cut (:class:`Take`, in
:mod:`.task_splits`) -- as the authors' code (github.com/khyun8072/PiFi, Classification/task/classification/
preprocessing.py) does. :func:`assemble_task` applies a row to rows already in memory (pure, testable
offline); :func:`load_builtin_task` fetches the rows with the optional ``datasets`` library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from pifi_extract.errors import ConfigError, CorruptFileError, OfflineError

from .data import Examples, TaskData
from .raw_files import RawFiles, fetch_raw_files, missing
from .task_splits import Holdout, Take, select

__all__ = ["Holdout", "RawFiles", "TASKS", "Take", "TaskSpec", "assemble_task", "get_task", "load_builtin_task",
           "needed_splits", "task_names"]


@dataclass(frozen=True)
class TaskSpec:
    """One built-in task of the paper or of the authors' code."""

    name: str
    path: str
    config_name: str | None
    text_column: str
    text_pair_column: str | None
    label_column: str
    # raw label -> our id; rows whose label is not a key (or is missing) are dropped
    label_ids: Mapping[int, int]
    label_names: Sequence[str]
    train: Take
    validation: Take
    test: Take
    note: str = ""
    files: RawFiles | None = None  # read these instead of the Hub dataset ``path``
    drop_missing_text: bool = False  # a row without text is dropped (else its text is "")
    label_name_column: str | None = None  # a column naming each row's label: checked against label_names


_HOLDOUT = 0.2  # the authors' train_valid_split
_BINARY = {0: 0, 1: 1}
_SENTIMENT = ("negative", "positive")
_NLI = {0: 0, 1: 1, 2: 2}
_NLI_NAMES = ("entailment", "neutral", "contradiction")


def _holdout(split: str = "train", shuffle: str = "python") -> tuple[Take, Take]:
    """(train, validation): the split shuffled by the split seed, its first 20 % as validation (the authors'
    ``sample(frac=1)`` with ``shuffle="numpy"``)."""
    return (Take(split, shuffle_fraction=(_HOLDOUT, 1.0), shuffle=shuffle),
            Take(split, shuffle_fraction=(0.0, _HOLDOUT), shuffle=shuffle))


def _authors_holdout(split: str = "train") -> tuple[Take, Take]:
    return _holdout(split, "numpy")


# Filmstarts: shuffled (numpy, the split seed), then train_test_split(test_size=0.2, random_state=42), and
# its 20 % in halves (test_size=0.5, random_state=42): train 80 / validation 10 / test 10
_FILM_80, _FILM_20 = Holdout(_HOLDOUT, 42, "train"), Holdout(_HOLDOUT, 42, "test")
_FILM_VALIDATION, _FILM_TEST = Holdout(0.5, 42, "train"), Holdout(0.5, 42, "test")
_FILMSTARTS_SHUFFLE: dict[str, Any] = dict(shuffle_fraction=(0.0, 1.0), shuffle="numpy")
_NSMC_URL = "https://raw.githubusercontent.com/e9t/nsmc/master/ratings_{}.txt"
_FILMSTARTS_COMMIT = "3bdea61db43f44e84d770ece61850e935aa3d6d3"  # github.com/oliverguhr/german-sentiment (LFS)
_FILMSTARTS_URL = (f"https://media.githubusercontent.com/media/oliverguhr/german-sentiment/{_FILMSTARTS_COMMIT}/"
                   "source-data/filmstarts/filmstarts.tsv")
_FILMSTARTS_SHA256 = "c3dae615495418f07c768cf2fea85ab3266065f8208c246ad56e57f250e1b0e3"  # its LFS pointer's oid

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("sst2", "SetFit/sst2", None, "text", None, "label", _BINARY, _SENTIMENT,
                 Take("train"), Take("validation"), Take("test")),
        TaskSpec("imdb", "stanfordnlp/imdb", None, "text", None, "label", _BINARY, ("neg", "pos"),
                 *_holdout(), Take("test"), note="train split 80/20 into train/validation"),
        TaskSpec("tweet_sentiment_binary", "cardiffnlp/tweet_eval", "sentiment", "text", None, "label",
                 {0: 0, 2: 1}, _SENTIMENT, Take("train"), Take("validation"), Take("test"),
                 note="neutral dropped, positive -> 1"),
        TaskSpec("tweet_offensive", "cardiffnlp/tweet_eval", "offensive", "text", None, "label", _BINARY,
                 ("not-offensive", "offensive"), Take("train"), Take("validation"), Take("test")),
        TaskSpec("cola", "nyu-mll/glue", "cola", "sentence", None, "label", _BINARY,
                 ("unacceptable", "acceptable"), *_holdout(), Take("validation"),
                 note="train split 80/20 into train/validation; test = GLUE validation"),
        TaskSpec("mnli", "nyu-mll/glue", "mnli", "premise", "hypothesis", "label", _NLI, _NLI_NAMES,
                 Take("train", tail_size_of="validation_mismatched", tail=False),
                 Take("train", tail_size_of="validation_mismatched", tail=True), Take("validation_mismatched"),
                 note="validation = last len(validation_mismatched) train rows; test = validation_mismatched"),
        TaskSpec("snli", "stanfordnlp/snli", None, "premise", "hypothesis", "label", _NLI, _NLI_NAMES,
                 Take("train"), Take("validation"), Take("test"), note="labels outside 0..2 dropped"),
        # ---- Table 3 (domain shift) and Table 4 (Korean, German) -----------------------------------------
        TaskSpec("cr", "SetFit/SentEval-CR", None, "text", None, "label", _BINARY, _SENTIMENT,
                 *_authors_holdout(), Take("test"), label_name_column="label_text",
                 note="customer reviews (Ding et al. 2008); train 80/20 as the authors (numpy shuffle)"),
        TaskSpec("nsmc", "e9t/nsmc", None, "document", None, "label", _BINARY, _SENTIMENT,
                 *_authors_holdout(), Take("test"),
                 files=RawFiles({s: _NSMC_URL.format(s) for s in ("train", "test")}, ("id", "document", "label"),
                                header=True),
                 note="Korean movie reviews; the Hub's e9t/nsmc is a loading script (never run): its source "
                      "files from github.com/e9t/nsmc; train 80/20 as the authors (numpy shuffle)"),
        TaskSpec("filmstarts", "oliverguhr/german-sentiment", None, "text", None, "label",
                 {0: 0, 1: 0, 2: 0, 4: 1, 5: 1}, _SENTIMENT,
                 Take("train", **_FILMSTARTS_SHUFFLE, holdouts=(_FILM_80,)),
                 Take("train", **_FILMSTARTS_SHUFFLE, holdouts=(_FILM_20, _FILM_VALIDATION)),
                 Take("train", **_FILMSTARTS_SHUFFLE, holdouts=(_FILM_20, _FILM_TEST)),
                 files=RawFiles({"train": _FILMSTARTS_URL}, ("address", "label", "text"), header=False,
                                sha256={"train": _FILMSTARTS_SHA256}, skip_bad_lines=True),
                 drop_missing_text=True,
                 note="German movie reviews (Guhr et al. 2020), not on the Hub: filmstarts.tsv of "
                      "github.com/oliverguhr/german-sentiment; ratings 0-2 negative, 4-5 positive, 3 dropped; "
                      "shuffled, then 80/10/10 by train_test_split(random_state=42) twice, as the authors"),
        # ---- the authors' other classification tasks with a public Hub dataset ----------------------------
        TaskSpec("sst5", "SetFit/sst5", None, "text", None, "label", {i: i for i in range(5)},
                 ("very negative", "negative", "neutral", "positive", "very positive"),
                 Take("train"), Take("validation"), Take("test"), label_name_column="label_text"),
        TaskSpec("subj", "SetFit/subj", None, "text", None, "label", _BINARY, ("objective", "subjective"),
                 *_authors_holdout(), Take("test"), label_name_column="label_text",
                 note="train 80/20 as the authors (numpy shuffle)"),
        TaskSpec("trec", "CogComp/trec", None, "text", None, "coarse_label", {i: i for i in range(6)},
                 ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"), *_authors_holdout(), Take("test"),
                 note="the 6 coarse classes; train 80/20 as the authors (numpy shuffle)"),
        TaskSpec("agnews", "fancyzhx/ag_news", None, "text", None, "label", {i: i for i in range(4)},
                 ("World", "Sports", "Business", "Sci/Tech"), *_authors_holdout(), Take("test"),
                 note="train 80/20 as the authors (numpy shuffle)"),
        TaskSpec("dbpedia", "fancyzhx/dbpedia_14", "dbpedia_14", "content", None, "label",
                 {i: i for i in range(14)},
                 ("Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation",
                  "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork"),
                 *_authors_holdout(), Take("test"), note="train 80/20 as the authors (numpy shuffle)"),
        TaskSpec("mr", "cornell-movie-review-data/rotten_tomatoes", None, "text", None, "label", _BINARY,
                 ("neg", "pos"), Take("train"), Take("validation"), Take("test"),
                 note="the MR sentence polarity data (Pang & Lee 2005) with the Hub's own splits; the authors "
                      "read local MR train/test CSVs of unknown origin"),
    ]
}


def task_names() -> list[str]:
    """The built-in task names, sorted."""
    return sorted(TASKS)


def get_task(name: str) -> TaskSpec:
    """The row for ``name``; a ConfigError listing the known tasks otherwise."""
    spec = TASKS.get(name.lower())
    if spec is None:
        raise ConfigError(f"unknown task {name!r}", f"known tasks: {', '.join(task_names())}; "
                          "or pass --train-file/--validation-file/--test-file")
    return spec


def _raw_label(value: Any, spec: TaskSpec) -> int | None:
    """A raw label as an int (``"4"``, ``4.0`` -> 4, truncated as pandas' ``astype(int)``); None when missing."""
    if missing(value):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    if not text or text.lower() == "nan":
        return None
    try:
        return int(float(text))
    except ValueError:
        raise ConfigError(f"dataset {spec.path}: label {value!r} is not a number",
                          f"the task {spec.name!r} expects integer labels in column {spec.label_column!r}") from None


def _kept_rows(spec: TaskSpec, table: Mapping[str, list]) -> list[int]:
    """Rows whose label the task keeps (and, with ``drop_missing_text``, that have a text), in file order."""
    labels, texts = table[spec.label_column], table[spec.text_column]
    return [i for i, value in enumerate(labels)
            if _raw_label(value, spec) in spec.label_ids and not (spec.drop_missing_text and missing(texts[i]))]


def _text(value: Any) -> str:
    return "" if missing(value) else str(value)


def _check_label_name(spec: TaskSpec, table: Mapping[str, list], row: int, label: int) -> None:
    named = str(table[spec.label_name_column][row]).strip().lower()  # type: ignore[index]
    if named != str(spec.label_names[label]).lower():
        raise ConfigError(f"dataset {spec.path}: row {row} is labelled {named!r} but pifi's task table calls "
                          f"label {label} {spec.label_names[label]!r}",
                          "the dataset changed: report it, or use local files with --train-file")


def _examples(spec: TaskSpec, take: Take, raw: Mapping[str, Mapping[str, list]], seed: int) -> Examples:
    table = raw[take.split]
    tail = len(raw[take.tail_size_of][spec.label_column]) if take.tail_size_of else None
    texts, pairs, labels = [], [], []
    for i in select(take, _kept_rows(spec, table), seed, tail):
        label = spec.label_ids[_raw_label(table[spec.label_column][i], spec)]  # type: ignore[index]
        if spec.label_name_column:
            _check_label_name(spec, table, i, label)
        texts.append(_text(table[spec.text_column][i]))
        if spec.text_pair_column:
            pairs.append(_text(table[spec.text_pair_column][i]))
        labels.append(label)
    return Examples(texts, pairs if spec.text_pair_column else None, labels)


def needed_splits(spec: TaskSpec) -> list[str]:
    """Source split names a task reads."""
    names = {t.split for t in (spec.train, spec.validation, spec.test)}
    names |= {t.tail_size_of for t in (spec.train, spec.validation, spec.test) if t.tail_size_of}
    return sorted(names)


def _columns(spec: TaskSpec) -> list[str]:
    return [c for c in (spec.text_column, spec.text_pair_column, spec.label_column, spec.label_name_column) if c]


def assemble_task(spec: TaskSpec, raw: Mapping[str, Mapping[str, list]], seed: int) -> TaskData:
    """Cut ``raw`` (split -> column -> values) into our splits as the spec says. Pure."""
    missing = [s for s in needed_splits(spec) if s not in raw]
    if missing:
        raise ConfigError(f"dataset {spec.path} lacks split(s) {', '.join(missing)}")
    for split in needed_splits(spec):
        absent = [c for c in _columns(spec) if c not in raw[split]]
        if absent:
            raise ConfigError(f"dataset {spec.path} split {split} has no column(s) {', '.join(absent)}",
                              f"its columns: {', '.join(map(str, raw[split]))}")
    return TaskData(
        name=spec.name,
        label_names=list(spec.label_names),
        train=_examples(spec, spec.train, raw, seed),
        validation=_examples(spec, spec.validation, raw, seed),
        test=_examples(spec, spec.test, raw, seed),
        source={"task": spec.name, "dataset": spec.path, "config": spec.config_name, "note": spec.note},
    )


def load_builtin_task(name: str, seed: int, cache_dir: str | None = None) -> TaskData:
    """Download (or read from the ``datasets`` cache) a built-in task and split it as the paper does."""
    spec = get_task(name)
    try:
        import datasets  # optional extra: pifi[datasets]
    except ImportError as err:
        raise ConfigError(
            f"built-in task {spec.name!r} needs the optional 'datasets' library",
            "pip install 'pifi[datasets]', or pass local files with --train-file/--validation-file/--test-file",
        ) from err
    from huggingface_hub import constants

    source = ", ".join(spec.files.urls.values()) if spec.files else spec.path
    try:
        if spec.files is not None:
            raw = fetch_raw_files(spec.files, datasets, cache_dir)
        else:
            loaded: Any = datasets.load_dataset(spec.path, spec.config_name, cache_dir=cache_dir)
            raw = {split: {c: loaded[split][c] for c in _columns(spec) if c in loaded[split].column_names}
                   for split in needed_splits(spec) if split in loaded}
    except (ConfigError, CorruptFileError):
        raise
    except Exception as err:  # datasets raises many types (DatasetNotFoundError, ConnectionError, ValueError...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        if constants.HF_HUB_OFFLINE or isinstance(err, ConnectionError):
            raise OfflineError(f"dataset {source} for task {spec.name!r} is not available offline: {first}",
                               "connect once to cache it, or pass local files with --train-file") from err
        raise ConfigError(f"could not load dataset {source} for task {spec.name!r}: {first}") from err
    return assemble_task(spec, raw, seed)
