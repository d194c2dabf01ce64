"""The cache against the loopback Hub: request counts of hits, offline `main`, push -> pull round trips, hf://."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import constants
from safetensors.torch import save_file
import torch

from layer_cache import LayerCache, get_or_extract, pull, push, resolve_reference
from pifi_extract import verify_artifact
from pifi_extract.errors import AccessDeniedError, ArtifactError, OfflineError

REPO = "org/tiny-llama"
SHARED = "lab/layers"
GATED_TOKEN = "hf_gated_reader"


@pytest.fixture
def hub(hub_server, llama_dir, monkeypatch):
    hub_server.add_repo(REPO, llama_dir)
    return hub_server


def test_second_extract_transfers_no_tensor_bytes(tmp_path, hub, monkeypatch):
    cache = tmp_path / "cache"
    first = get_or_extract(REPO, -1, cache_dir=cache)
    sha = hub.head(REPO)
    assert not first.hit and first.key.commit == sha and first.key.layer_index == 3
    assert first.path == cache / "models--org--tiny-llama" / sha / "layer-3.safetensors"
    assert (cache / "models--org--tiny-llama" / "refs" / "main").read_text() == sha

    hub.reset_counters()  # a commit sha: no request at all
    again = get_or_extract(REPO, -1, revision=sha, cache_dir=cache)
    assert again.hit and again.path == first.path and hub.log == []

    # a branch: only the commit resolution (one metadata request, no file bytes)
    assert get_or_extract(REPO, 3, revision="main", cache_dir=cache).hit
    assert [r.path for r in hub.log] == [f"/api/models/{REPO}/revision/main"] and hub.bytes_sent == 0

    hub.reset_counters()  # offline: `main` resolved through refs/main, nothing sent
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert get_or_extract(REPO, -1, cache_dir=cache).path == first.path
    assert resolve_reference(f"{REPO}:-1", cache_dir=cache).path == first.path
    assert resolve_reference(f"{REPO}@main:3", cache_dir=cache).path == first.path
    assert hub.log == []
    with pytest.raises(OfflineError):  # a layer that is not cached still needs the Hub
        get_or_extract(REPO, 0, cache_dir=cache)


def test_a_moved_branch_is_a_new_key_and_main_wins(tmp_path, hub):
    cache = tmp_path / "cache"
    old = get_or_extract(REPO, -1, cache_dir=cache)
    new_sha = hub.replace_file(REPO, "extra.txt", b"new commit on main")
    new = get_or_extract(REPO, -1, cache_dir=cache)
    assert not new.hit and new.key.commit == new_sha != old.key.commit
    assert resolve_reference(f"{REPO}:-1", cache_dir=cache).path == new.path  # `main` now
    assert resolve_reference(f"{REPO}@{old.key.commit[:8]}:-1", cache_dir=cache).path == old.path
    assert resolve_reference(old.reference, cache_dir=cache).path == old.path


def _serve_gated_with_license(hub_server, llama_dir) -> str:
    files = {p.name: p.read_bytes() for p in llama_dir.iterdir() if p.is_file()}
    files["README.md"] = b"---\nlicense: llama3.1\n---\n# tiny\n"
    return hub_server.add_repo("meta/gated-tiny", files, gated_token=GATED_TOKEN)


def test_push_then_pull_round_trip_with_model_card(tmp_path, hub, llama_dir):
    sha = _serve_gated_with_license(hub, llama_dir)
    lab = tmp_path / "lab-cache"
    art = get_or_extract("meta/gated-tiny", -1, dtype="bf16", token=GATED_TOKEN, cache_dir=lab)
    local = get_or_extract(str(llama_dir), 1, cache_dir=lab)
    result = push([art.reference, local.reference], SHARED, token=hub.write_token, cache_dir=lab)
    assert hub.repos[SHARED].private  # private by default
    rel = f"models--meta--gated-tiny/{sha}/layer-3.bf16.safetensors"
    assert result.paths[0] == rel
    card = hub.repos[SHARED].commits[hub.head(SHARED)].files["README.md"].source.read_text()
    assert "license: llama3.1" in card and "base_model:" in card and "- meta/gated-tiny" in card
    assert "gated model" in card and result.warnings and "gated" in result.warnings[0]
    assert f"pifi train --task sst2 --slm google-bert/bert-base-uncased --layer-artifact hf://{SHARED}/{rel}" in card

    member = tmp_path / "member-cache"  # another machine: pull everything, then use it offline by key
    pulled = pull(SHARED, token=hub.write_token, cache_dir=member)
    assert sorted(str(p.key.rel_path) for p in pulled) == sorted(result.paths)
    got = next(p for p in pulled if p.key == art.key)
    assert got.data_sha256 == art.data_sha256 and not got.hit
    verify_artifact(got.path)
    hub.reset_counters()
    again = get_or_extract("meta/gated-tiny", -1, dtype="bf16", revision=sha, cache_dir=member)
    assert again.hit and again.path == got.path and hub.log == []
    assert got.pulled_from == again.pulled_from == SHARED and art.pulled_from is None  # shown by ls and on a hit
    assert all(p.hit for p in pull(SHARED, token=hub.write_token, cache_dir=member))  # idempotent: headers only
    assert hub.bytes_for(SHARED, rel) < 2 * 8192


def test_hf_reference_is_pulled_on_first_use_then_local(tmp_path, hub):
    lab = tmp_path / "lab"
    art = get_or_extract(REPO, -1, cache_dir=lab)
    push([art.reference], SHARED, private=False, token=hub.write_token, cache_dir=lab)
    assert not hub.repos[SHARED].private
    ref = f"hf://{SHARED}/{art.key.rel_path}"
    other = tmp_path / "other"
    first = resolve_reference(ref, cache_dir=other, token=hub.write_token)
    assert first.cached is not None and first.cached.key == art.key and Path(first) == first.path
    hub.reset_counters()
    second = resolve_reference(ref, cache_dir=other)
    assert second.path == first.path and hub.log == []


def test_push_without_write_token_is_refused(tmp_path, hub):
    art = get_or_extract(REPO, -1, cache_dir=tmp_path / "c")
    with pytest.raises(AccessDeniedError, match="write access"):
        push([art.reference], SHARED, cache_dir=tmp_path / "c")
    with pytest.raises(AccessDeniedError, match="write access"):
        push([art.reference], SHARED, token="hf_not_a_real_token", cache_dir=tmp_path / "c")
    assert SHARED not in hub.repos


def test_pulling_a_file_that_is_not_a_pifi_artifact_is_refused_unloaded(tmp_path, hub):
    plain = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(4096)}, str(plain))
    hub.add_repo("org/not-pifi", {"weights.safetensors": plain.read_bytes(), "README.md": b"hi"})
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError, match="not a pifi artifact; refused"):
        pull("org/not-pifi", cache_dir=cache)
    with pytest.raises(ArtifactError, match="not a pifi artifact"):
        resolve_reference("hf://org/not-pifi/weights.safetensors", cache_dir=cache)
    assert LayerCache(cache).keys() == []
    assert sorted(p.name for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock") == [".pifi-cache", "CACHEDIR.TAG"]
    assert hub.bytes_for("org/not-pifi", "weights.safetensors") < 2 * 200  # header only, never the data


def test_a_failed_extract_leaves_no_ref(tmp_path, hub):
    from pifi_extract.errors import LayerIndexError

    cache = tmp_path / "cache"
    with pytest.raises(LayerIndexError):
        get_or_extract(REPO, 99, cache_dir=cache)
    assert not list(cache.rglob("refs")) and LayerCache(cache).keys() == []
    art = get_or_extract(REPO, -1, cache_dir=cache)
    assert LayerCache(cache).read_ref(REPO, "hub", "main") == art.key.commit


def test_pull_refuses_a_non_json_header_before_downloading_it(tmp_path, hub):
    import struct

    body = b"x" * (2 << 20)  # claims a 2 MB header of garbage
    hub.add_repo("org/garbage", {"models--a--b/c0ffee/layer-0.safetensors": struct.pack("<Q", len(body)) + body})
    hub.reset_counters()
    with pytest.raises(ArtifactError, match="not a JSON object"):
        pull("org/garbage", cache_dir=tmp_path / "cache")
    assert hub.bytes_for("org/garbage", "models--a--b/c0ffee/layer-0.safetensors") < 16384


def test_pull_survives_short_writes(tmp_path, hub, llama_dir, monkeypatch):
    import os as os_mod

    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "lab")
    push([art.reference], SHARED, token=hub.write_token, cache_dir=tmp_path / "lab")
    real = os_mod.pwrite
    monkeypatch.setattr(os_mod, "pwrite", lambda fd, data, off: real(fd, bytes(data[: max(1, len(data) // 2)]), off))
    (got,) = pull(SHARED, token=hub.write_token, cache_dir=tmp_path / "member")
    monkeypatch.undo()
    assert got.data_sha256 == art.data_sha256 and verify_artifact(got.path)
