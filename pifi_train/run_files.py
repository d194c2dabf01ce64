"""The files of a run directory, by name: reading and writing them safely, and replacing a run (--overwrite).

Layout of one run (``seeds > 1``: one such folder per ``seed-<s>/`` plus ``sweep.json``)::

    config.json                 every option, the family, the artifact reference and sha256, versions
    metrics.json                per-epoch and final metrics (the family's metrics spec)
    predictions.jsonl           the best epoch's prediction for every example of validation and each test set
    checkpoint/                 the best epoch: ONLY trainable tensors (pifi_trainable.safetensors), the SLM's
                                config and tokenizer files (listed in config.json: ``checkpoint_files``)
    state/                      the last finished epoch, for --resume (last.safetensors, trainer.json)
    tensorboard/                --report-to tensorboard

pifi never removes a tree: ``--overwrite`` removes exactly the files named above (tokenizer files by the names
the run recorded), so a user's notebook kept in a run folder survives. Every JSON or text file is written
atomically (temp file + rename) with the usual permissions (0666 minus the umask); a full disk is one line.
Torch-free.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable

from pifi_extract.errors import ConfigError, CorruptFileError, SourceNotFoundError, StorageError

CONFIG = "config.json"
METRICS = "metrics.json"
SWEEP = "sweep.json"
PREDICTIONS = "predictions.jsonl"
CHECKPOINT_DIR = "checkpoint"
WEIGHTS = "pifi_trainable.safetensors"
STATE_DIR = "state"
STATE_WEIGHTS = "last.safetensors"
STATE_COUNTERS = "trainer.json"
TENSORBOARD_DIR = "tensorboard"
RUN_MARKER = "pifi_run"
MAX_JSON_BYTES = 256 * 1024 * 1024  # a run's JSON files are KBs to a few MBs (per-example predictions)

# files earlier pifi versions wrote at the top of a run (removed by --overwrite too)
_LEGACY_TOP = ("test_predictions.json", "predictions.json")
# the SLM config and tokenizer files transformers writes (checkpoint/ of runs that did not record their names)
_CHECKPOINT_KNOWN = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json",
                     "spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "chat_template.jinja",
                     "chat_template.json", WEIGHTS)
_TEMP = re.compile(r"^\..+\.(tmp|partial)$|^\..+\.[A-Za-z0-9_]{6,}\.tmp$")
_TFEVENTS = re.compile(r"^events\.out\.tfevents\.[\w.-]+$")
_SEED_DIR = re.compile(r"^seed-\d+$")


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def write_error(err: OSError, path: Path) -> StorageError:
    """One line for a failed write of a run file (disk full, not writable, ...)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"disk full while writing {path}", "free some space and continue with --resume")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot write {path}: {err.strerror}", "choose a writable --output-dir")
    return StorageError(f"cannot write {path}: {err.strerror or err}")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file in the same folder + rename): readers see the old or the new file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), FILE_MODE)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise write_error(err, path) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """One JSON value per line, atomically."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: Path) -> Any:
    """A run's JSON file; missing, oversized, non-UTF-8, invalid or too deeply nested: one line."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"{path} does not exist", "is this a pifi run directory?")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise CorruptFileError(f"{path} is larger than a run file can be ({path.stat().st_size} bytes)")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise CorruptFileError(f"{path} is not valid JSON: {err.msg} (line {err.lineno})") from None
    except RecursionError:
        raise CorruptFileError(f"{path} is nested too deeply to be a run file") from None


def read_jsonl(path: Path) -> list[Any]:
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError):
                raise CorruptFileError(f"{path} line {number} is not JSON") from None
    return rows


def is_run_dir(path: Path) -> bool:
    """A directory written by ``pifi train`` (one run or a seed sweep)."""
    if (path / SWEEP).is_file():
        return True
    try:
        return bool(json.loads((path / CONFIG).read_text()).get(RUN_MARKER))
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def check_output_dir(path: Path, overwrite: bool, resume: bool) -> None:
    """Refuse to clobber: an existing non-empty directory needs --overwrite (pifi runs only) or --resume."""
    if resume:
        if not is_run_dir(path):
            raise ConfigError(f"--resume: {path} is not a pifi run directory")
        return
    if path.is_symlink() and overwrite:
        raise ConfigError(f"--overwrite refused: {path} is a symbolic link", "pass the folder it points to, or "
                          "another --output-dir")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output path {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise ConfigError(f"output directory {path} already exists",
                              "pass --overwrite to replace its run files or --resume to continue it")
        if not is_run_dir(path):
            raise ConfigError(f"--overwrite refused: {path} is not a pifi run directory",
                              "choose another --output-dir")


def run_files(run_dir: Path) -> list[Path]:
    """Every file a pifi run wrote in ``run_dir`` (and its seed-<s>/ folders), by name; nothing else."""
    found: list[Path] = []

    def regular(path: Path) -> bool:
        try:
            return stat.S_ISREG(os.lstat(path).st_mode)  # never follow a link out of the run
        except OSError:
            return False

    def real_dir(path: Path) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            return False

    def listing(folder: Path) -> list[str]:
        return sorted(os.listdir(folder)) if real_dir(folder) else []

    recorded: list[str] = []
    try:
        recorded = [str(n) for n in json.loads((run_dir / CONFIG).read_text()).get("checkpoint_files", [])]
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        pass
    checkpoint_names = set(recorded or _CHECKPOINT_KNOWN) | {WEIGHTS}
    for name in listing(run_dir):
        path = run_dir / name
        if name in (CONFIG, METRICS, SWEEP, PREDICTIONS, *_LEGACY_TOP) or _TEMP.match(name):
            found += [path] if regular(path) else []
        elif _SEED_DIR.match(name) and real_dir(path) and is_run_dir(path):
            found += run_files(path)
    for name in listing(run_dir / CHECKPOINT_DIR):
        if (name in checkpoint_names and "/" not in name) or _TEMP.match(name):
            found += [run_dir / CHECKPOINT_DIR / name] if regular(run_dir / CHECKPOINT_DIR / name) else []
    for name in listing(run_dir / STATE_DIR):
        if name in (STATE_WEIGHTS, STATE_COUNTERS) or _TEMP.match(name):
            found += [run_dir / STATE_DIR / name] if regular(run_dir / STATE_DIR / name) else []
    for name in listing(run_dir / TENSORBOARD_DIR):
        if _TFEVENTS.match(name):
            found += [run_dir / TENSORBOARD_DIR / name] if regular(run_dir / TENSORBOARD_DIR / name) else []
    return found


def remove_run_files(run_dir: Path) -> list[Path]:
    """--overwrite: remove the files a run wrote (:func:`run_files`) and the folders that leaves empty."""
    removed = run_files(run_dir)
    folders = {p.parent for p in removed}
    for path in removed:
        path.unlink(missing_ok=True)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        remove_if_empty(folder, keep=run_dir)
    return removed


def remove_if_empty(folder: Path, keep: Path | None = None) -> None:
    """``rmdir`` (never a tree) of ``folder`` and then of its emptied parents up to ``keep`` (kept)."""
    folder = Path(folder)
    while keep is None or folder != keep:
        try:
            folder.rmdir()
        except OSError:
            return
        if keep is None:
            return
        folder = folder.parent


def prepare_output_dir(path: Path, overwrite: bool) -> None:
    """Make the run directory (after every input was validated); --overwrite first removes a previous run's files."""
    try:
        if overwrite and path.is_dir() and is_run_dir(path):
            remove_run_files(path)
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(err, path) from None
