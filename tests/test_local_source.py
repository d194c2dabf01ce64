"""A local model folder laid out as the Hugging Face cache (snapshot files are symlinks into blobs/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pifi_extract.errors import CorruptFileError
from pifi_extract.extract import extract_layer
from pifi_extract.sources import LocalSource
from tiny_models import make_tiny_model


def _as_hf_cache(folder: Path, root: Path) -> Path:
    """Move ``folder``'s files into root/blobs and link them from root/snapshots/<commit>/, as the HF cache does."""
    blobs, snapshot = root / "blobs", root / "snapshots" / ("c" * 40)
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, file in enumerate(sorted(folder.iterdir())):
        blob = blobs / f"blob{i}"
        file.rename(blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    return snapshot


def test_extract_from_a_symlinked_snapshot_equals_the_plain_folder(tmp_path):
    plain = make_tiny_model("llama", tmp_path / "plain")
    expected = extract_layer(str(plain), -1, tmp_path / "a.safetensors").info.data_sha256
    copy = make_tiny_model("llama", tmp_path / "copy")
    snapshot = _as_hf_cache(copy, tmp_path / "models--org--tiny")
    assert extract_layer(str(snapshot), -1, tmp_path / "b.safetensors").info.data_sha256 == expected


@pytest.mark.parametrize("name", ["../x.safetensors", "/etc/passwd", "a/../../x", "", "C:/x"])
def test_names_that_climb_out_are_refused(tmp_path, name):
    source = LocalSource(tmp_path)
    with pytest.raises(CorruptFileError, match="outside the model folder"):
        source.size(name)
