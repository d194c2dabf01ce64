"""Files a user names (`predict -o`, `select -o`, `--plot`): one check before any work, atomic writes, one line.

FIFOs, folders and missing folders are refused before a model loads (a FIFO used to block `predict -o`
and `select -o` forever); a full disk leaves the old file (or none) and one line saying "disk full".
"""

from __future__ import annotations

import errno
import os
import stat

import pytest

from cli_runner import fails_in_one_line
from pifi_extract.errors import StorageError
from pifi_extract.outputs import check_output_file, write_output, write_output_text


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.png"  # with a suffix: report adds ".png" to a name without one
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("args", [
    ["predict", "--run-dir", "{tmp}/no-run", "--text", "x", "-o", "{fifo}"],
    ["select", "--llm", "{tmp}/no-model", "--train-file", "{tmp}/t.csv", "-o", "{fifo}"],
    ["select", "--llm", "{tmp}/no-model", "--train-file", "{tmp}/t.csv", "-o", "{tmp}/s.json", "--plot", "{fifo}"],
    ["sweep", "--llm", "{tmp}/no-model", "--output-dir", "{tmp}/sweep", "--plot", "{fifo}"],
    ["report", "{tmp}/no-runs", "--plot", "{fifo}"],
])
def test_a_fifo_is_refused_before_any_work(tmp_path, fifo, capsys, args):
    args = [a.format(tmp=tmp_path, fifo=fifo) for a in args]
    fails_in_one_line(capsys, args, "it is a FIFO (named pipe)")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # untouched


def test_devices_folders_and_missing_folders_are_refused(tmp_path):
    with pytest.raises(StorageError, match="it is a character device"):
        check_output_file("/dev/null")
    with pytest.raises(StorageError, match="it is a folder"):
        check_output_file(tmp_path, "--plot")
    with pytest.raises(StorageError, match="the folder .* does not exist"):
        check_output_file(tmp_path / "missing" / "x.jsonl")
    assert check_output_file(tmp_path / "new.jsonl") == tmp_path / "new.jsonl"


def test_write_is_atomic_and_a_full_disk_says_so_in_one_line(tmp_path):
    target = tmp_path / "predictions.jsonl"
    write_output_text(target, "old\n")
    assert target.read_text() == "old\n" and oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    def half_then_full(fh):
        fh.write(b"new, half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError, match="disk full while writing .*predictions.jsonl") as err:
        write_output(target, half_then_full)
    assert "\n" not in str(err.value)
    assert target.read_text() == "old\n"  # the previous file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.jsonl"]  # no temp file left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
