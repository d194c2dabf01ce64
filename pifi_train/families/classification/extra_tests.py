"""The domain-shift test sets of a classification run (``--extra-test``, the paper's Table 3).

:func:`load_extra_test` reads one more test set (``--extra-test``: a built-in task's test split or a
local file with the run's columns) and maps its labels BY NAME onto the run's labels; label sets
that do not match are refused with both of them listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pifi_extract.errors import ConfigError

from ...tables import read_table, require_columns
from .data import Examples, label_key

# names meaning the same class in the paper's datasets (imdb says neg/pos, tweet_eval negative/positive)
LABEL_ALIASES = {"neg": "negative", "pos": "positive"}


def _canonical(name: str) -> str:
    name = str(name).strip().lower()
    return LABEL_ALIASES.get(name, name)


def map_labels(source_names: Sequence[str], run_names: Sequence[str], what: str) -> dict[int, int]:
    """Source label id -> run label id, matched by (canonical) name; refused unless the sets are equal."""
    run = {_canonical(n): i for i, n in enumerate(run_names)}
    source = {_canonical(n): i for i, n in enumerate(source_names)}
    if set(run) != set(source):
        raise ConfigError(f"--extra-test {what}: its labels ({', '.join(map(str, source_names))}) do not match "
                          f"the run's ({', '.join(map(str, run_names))})",
                          "an extra test set needs the same classes, matched by name")
    return {source[name]: run[name] for name in source}


def load_extra_test(reference: str, config: Any, run_names: Sequence[str]) -> Examples:
    """The examples of one ``--extra-test`` (a built-in task's test split, or a local file), in run label ids."""
    from .tasks import TASKS, load_builtin_task

    if reference.lower() in TASKS and not Path(reference).is_file():
        data = load_builtin_task(reference, config.split_seed)
        if data.test is None:
            raise ConfigError(f"--extra-test {reference}: the task has no test split")
        mapping = map_labels(data.label_names, run_names, reference)
        test = data.test
        return Examples(test.texts, test.pairs, [mapping[y] for y in test.labels])
    path = Path(reference)
    rows = read_table(path)
    columns = [config.text_column, config.text_pair_column, config.label_column]
    if config.task is not None:  # a built-in run: the task's own column names
        spec = TASKS[config.task.lower()]
        columns = [spec.text_column, spec.text_pair_column, spec.label_column]
    require_columns(rows, [c for c in columns if c], path)
    text, pair, label = columns
    keys = [str(label_key(row[label], path, n)) for n, row in enumerate(rows, 1)]
    names = sorted(set(keys))
    mapping = map_labels(names, run_names, str(path))
    ids = {name: mapping[i] for i, name in enumerate(names)}
    return Examples([str(r[text]) for r in rows], [str(r[pair]) for r in rows] if pair else None,
                    [ids[k] for k in keys])
