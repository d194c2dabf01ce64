"""GGUF files through the cache: a Hub repo's GGUF is the source ORG/REPO/FILE.gguf (key, reference, push/pull)."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest
from huggingface_hub import constants

from layer_cache import LayerCache, get_or_extract, key_of, pull, push, resolve_reference
from layer_cache.layout import key_source_of_provenance, repo_id_of_dir
from pifi_extract import read_artifact, verify_artifact
from tiny_gguf import write_tiny_gguf
from tiny_models import build_tiny_model
from cli_runner import run_cli

REPO = "org/tiny-gguf"
FILE = "tiny.Q8_0.gguf"
SOURCE = f"{REPO}/{FILE}"
FOLDER = "models--org--tiny-gguf--tiny.Q8_0.gguf"
SHARED = "lab/gguf-layers"
Q = gguf.GGMLQuantizationType


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory) -> Path:
    """A folder with one tiny 4-layer llama GGUF (Q8_0 and F16 tensors mixed with F32)."""
    folder = tmp_path_factory.mktemp("gguf-repo")
    model = build_tiny_model("llama", seed=2)
    write_tiny_gguf(model, folder / FILE, quantize={"attn_q": Q.Q8_0, "attn_v": Q.F16}, vocab_as_tokens=True)
    return folder


@pytest.fixture
def hub(hub_server, gguf_dir, monkeypatch):
    hub_server.add_repo(REPO, gguf_dir)
    return hub_server


def test_hub_gguf_is_cached_under_repo_and_file(tmp_path, hub, monkeypatch):
    cache = tmp_path / "cache"
    first = get_or_extract(REPO, -1, gguf_file=FILE, cache_dir=cache)
    sha = hub.head(REPO)
    assert not first.hit and first.key.source == SOURCE and first.key.kind == "hub" and first.key.commit == sha
    assert first.path == cache / FOLDER / sha / "layer-3.safetensors"
    assert (cache / FOLDER / "refs" / "main").read_text() == sha
    assert repo_id_of_dir(FOLDER) == SOURCE and first.reference == f"{SOURCE}@{sha[:12]}:3"
    assert hub.bytes_for(REPO, FILE) > 0

    hub.reset_counters()  # a full commit sha: no request at all
    again = get_or_extract(REPO, 3, gguf_file=FILE, revision=sha, cache_dir=cache)
    assert again.hit and again.path == first.path and hub.log == []

    # a branch: only the commit resolution, no file bytes
    assert get_or_extract(REPO, -1, gguf_file=FILE, revision="main", cache_dir=cache).hit
    assert [r.path for r in hub.log] == [f"/api/models/{REPO}/revision/main"] and hub.bytes_sent == 0

    hub.reset_counters()  # offline: `main` through the recorded ref, nothing sent
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert get_or_extract(REPO, -1, gguf_file=FILE, cache_dir=cache).path == first.path
    for ref in (f"{SOURCE}:-1", f"{SOURCE}@main:3", first.reference, f"{FOLDER}/{sha}/layer-3.safetensors"):
        assert resolve_reference(ref, cache_dir=cache).path == first.path, ref
    assert hub.log == []
    (listed,) = LayerCache(cache).entries()
    assert listed.key == first.key and listed.refs == ("main",)
    # the provenance maps back to the same key (what push/pull rely on)
    assert key_source_of_provenance(read_artifact(first.path).provenance) == (SOURCE, "hub")
    assert key_of(read_artifact(first.path)) == first.key


def test_folder_plus_gguf_file_is_the_file_itself(tmp_path, gguf_dir):
    cache = tmp_path / "cache"
    via_folder = get_or_extract(str(gguf_dir), -1, gguf_file=FILE, cache_dir=cache)
    assert not via_folder.hit and via_folder.key.kind == "local"
    assert via_folder.key.source == str((gguf_dir / FILE).resolve())
    via_file = get_or_extract(str(gguf_dir / FILE), 3, cache_dir=cache)
    assert via_file.hit and via_file.key == via_folder.key
    assert resolve_reference(f"{gguf_dir / FILE}:-1", cache_dir=cache).path == via_folder.path


def test_push_then_pull_keeps_the_gguf_key(tmp_path, hub):
    lab = tmp_path / "lab"
    art = get_or_extract(REPO, -1, gguf_file=FILE, dtype="bf16", cache_dir=lab)
    result = push([art.reference], SHARED, token=hub.write_token, cache_dir=lab)
    assert result.paths == [str(art.key.rel_path)] and result.paths[0].startswith(f"{FOLDER}/")
    card = hub.repos[SHARED].commits[hub.head(SHARED)].files["README.md"].source.read_text()
    assert f"base_model:\n- {REPO}\ntags:" in card and f"| {SOURCE} |" in card  # base_model: the repo id

    member = tmp_path / "member"
    (got,) = pull(SHARED, token=hub.write_token, cache_dir=member)
    assert got.key == art.key and got.path == member / art.key.rel_path and got.data_sha256 == art.data_sha256
    verify_artifact(got.path)
    assert (member / FOLDER / "refs" / "main").read_text() == art.key.commit
    hub.reset_counters()  # pulled == extracted: a hit by commit sha, and by reference
    again = get_or_extract(REPO, -1, gguf_file=FILE, dtype="bf16", revision=art.key.commit, cache_dir=member)
    assert again.hit and again.path == got.path and hub.log == []
    assert resolve_reference(f"{SOURCE}:-1:bf16", cache_dir=member).path == got.path


_pifi = run_cli


def test_cli_extract_hub_gguf_through_the_cache(tmp_path, hub, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)
    args = ("extract", "--llm", REPO, "--gguf-file", FILE, "--layer", "-1", "--cache-dir", str(cache), "-q")
    code, out, err = _pifi(capsys, *args)
    sha = hub.head(REPO)
    assert code == 0, err
    assert f"stored in the cache: {SOURCE}@{sha[:12]}:3" in out
    assert not list(tmp_path.glob("*.safetensors"))  # no stray file in the current folder: it is in the cache
    code, out, err = _pifi(capsys, *args, "-o", str(tmp_path / "out"), "--revision", sha)
    assert code == 0 and "from the cache" in out, err
    assert read_artifact(tmp_path / "out").provenance["gguf_file"] == FILE
    code, out, err = _pifi(capsys, "cache", "ls", "--json", "--cache-dir", str(cache))
    (row,) = json.loads(out)["artifacts"]
    assert row["source"] == SOURCE and row["kind"] == "hub"
    code, out, err = _pifi(capsys, "inspect", row["reference"], "--json", "--cache-dir", str(cache))
    assert code == 0 and json.loads(out)["provenance"]["layer_index"] == 3, err
