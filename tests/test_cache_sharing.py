"""Sharing through the Hub without losing or downgrading anything: a pull never replaces a cached artifact with
other tensors, and a header-digest downgrade to format 1 is refused (loopback Hub, tmp folders only)."""

from __future__ import annotations

import json
import os

import pytest

from forge import forge
from layer_cache import LayerCache, get_or_extract, pull
from pifi_extract import read_artifact
from pifi_extract.errors import ArtifactError, CacheError
from test_cache_cli import one_line_error, pifi

REPO = "org/tiny-llama"


@pytest.fixture
def hub(hub_server, llama_dir):
    hub_server.add_repo(REPO, llama_dir)
    return hub_server


def negate(body: bytes) -> bytes:
    return bytes(b ^ 0x80 for b in body)  # flips every sign bit of a bf16/fp32 value: other weights


def test_a_pull_claiming_a_locally_extracted_key_is_refused(tmp_path, capsys, hub):
    cache = tmp_path / "c"
    local = get_or_extract(REPO, -1, cache_dir=cache)
    before = local.path.read_bytes()
    rel = str(local.key.rel_path)
    hub.add_repo("evil/layers", {rel: forge(local.path, tmp_path / "f.safetensors", data=negate).read_bytes()})
    with pytest.raises(CacheError, match=f"evil/layers/{rel} claims the key .*extracted here.*refused"):
        pull("evil/layers", cache_dir=cache)
    code, _, err = pifi(capsys, "cache", "pull", "evil/layers", "--cache-dir", str(cache), "-q")
    one_line_error(code, err, "claims the key", local.key.display(), "pifi cache rm")
    assert local.path.read_bytes() == before and LayerCache(cache).get(local.key).pulled_from is None
    hub.add_repo("lab/same", {rel: before})  # the very same artifact: a no-op, as before
    (same,) = pull("lab/same", cache_dir=cache)
    assert same.hit and same.path == local.path


K, V = "self_attn.k_proj.weight", "self_attn.v_proj.weight"


def downgrade(path, tmp_path):
    """Strip the header digest, set pifi.format to 1 and swap k/v, in place (as the issue's attack did)."""
    os.chmod(path, 0o644)
    forged = forge(path, tmp_path / "downgraded.safetensors", swap=(K, V), format_1=True)
    path.write_bytes(forged.read_bytes())


def test_a_cached_artifact_downgraded_to_format_1_is_refused(tmp_path, capsys, llama_dir):
    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    downgrade(art.path, tmp_path)
    assert read_artifact(art.path).format_version == 1  # accepted by the header reader alone
    with pytest.raises(ArtifactError, match="header was changed after it was stored"):
        LayerCache(cache).get(art.key)
    code, _, err = pifi(capsys, "inspect", art.reference, "--cache-dir", str(cache))
    one_line_error(code, err, "is corrupt")
    code, out, _ = pifi(capsys, "cache", "verify", "--cache-dir", str(cache))
    assert code == 1 and "CORRUPT" in out
    with pytest.raises(ArtifactError, match="cannot tell predates format 2"):  # its memo is gone now: still refused
        LayerCache(cache).get(art.key)


def test_a_downgrade_of_an_artifact_whose_memo_has_no_header_digest_is_refused(tmp_path, llama_dir):
    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    memo = art.path.with_name(f".{art.path.name}.pifi-ok")
    old = {k: v for k, v in json.loads(memo.read_text()).items() if k != "header_sha256"}
    memo.write_text(json.dumps(old))  # a memo written by the format-2 pifi before this fix
    downgrade(art.path, tmp_path)
    with pytest.raises(ArtifactError, match="cannot tell predates format 2"):
        LayerCache(cache).get(art.key)


def test_a_format_1_artifact_of_an_older_pifi_stays_usable_and_is_pinned(tmp_path, llama_dir):
    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    os.chmod(art.path, 0o644)
    art.path.write_bytes(forge(art.path, tmp_path / "v1.safetensors", format_1=True).read_bytes())  # as pifi 1 wrote it
    st = art.path.stat()
    info = read_artifact(art.path)
    memo = art.path.with_name(f".{art.path.name}.pifi-ok")
    memo.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "data_sha256": info.data_sha256}))
    assert LayerCache(cache).get(art.key).data_sha256 == info.data_sha256  # an old cache keeps working
    assert "header_sha256" in json.loads(memo.read_text())  # ...and its header digest is recorded from now on
    forged = forge(art.path, tmp_path / "swapped.safetensors", swap=(K, V), format_1=True)
    art.path.write_bytes(forged.read_bytes())  # a later edit of that format-1 header (same size)
    os.utime(art.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ArtifactError, match="header was changed after it was stored"):
        LayerCache(cache).get(art.key)


def test_a_pull_of_a_format_1_artifact_is_refused(tmp_path, capsys, hub, llama_dir):
    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "c")
    forged = forge(art.path, tmp_path / "f.safetensors", format_1=True, swap=(K, V))
    hub.add_repo("evil/v1", {str(art.key.rel_path): forged.read_bytes()})
    code, _, err = pifi(capsys, "cache", "pull", "evil/v1", "--cache-dir", str(tmp_path / "c2"), "-q")
    one_line_error(code, err, "is a format-1 artifact", "refused, nothing was pulled")
    assert LayerCache(tmp_path / "c2").keys() == []


def test_a_format_1_file_outside_the_cache_is_used_with_a_loud_warning(tmp_path, llama_dir):
    from layer_cache import resolve_reference
    from layer_cache.integrity import FormatOneWarning

    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "c")
    loose = forge(art.path, tmp_path / "mine.safetensors", format_1=True)
    with pytest.warns(FormatOneWarning, match="is a format-1 artifact"):
        assert resolve_reference(str(loose)).path == loose


def test_verify_against_a_source_that_is_gone_or_offline_is_not_corruption(tmp_path, capsys, hub, llama_dir,
                                                                           monkeypatch):
    import shutil

    from huggingface_hub import constants

    from layer_cache.source_check import verify_against_source

    cache = tmp_path / "c"
    folder = tmp_path / "model"
    shutil.copytree(llama_dir, folder)
    local = get_or_extract(str(folder), 0, cache_dir=cache)
    remote = get_or_extract(REPO, 0, cache_dir=cache)
    shutil.rmtree(folder)  # (a copy in tmp_path: the source is gone)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # and the machine is offline
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    results = {r.key: r for r in (verify_against_source(k, cache_dir=cache) for k in (local.key, remote.key))}
    assert all(r.ok and r.unchecked and "cannot check against the source" in r.error for r in results.values())
    code, out, err = pifi(capsys, "cache", "verify", "--against-source", "--cache-dir", str(cache))
    assert code == 3 and out.count("UNCHECKED") == 2 and "CORRUPT" not in out + err and "cache rm" not in out + err
    assert "is gone" in out and "keep them" in err
    assert local.path.is_file() and remote.path.is_file()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub.stop()  # online again, but the Hub does not answer
    assert verify_against_source(remote.key, cache_dir=cache).unchecked


@pytest.mark.parametrize("skip", [0, 3], ids=["from-the-first-byte", "after-the-header"])
def test_a_stalled_pull_times_out_in_bounded_time_naming_the_network(tmp_path, capsys, hub, llama_dir, monkeypatch,
                                                                      skip):
    import time

    from huggingface_hub import constants

    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "c")
    hub.add_repo("lab/layers", {str(art.key.rel_path): art.path.read_bytes()})
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.2)  # (default 10 s) the test waits 5 x 0.2 s
    hub.faults.stall_every(1, 0, skip=skip)  # every file GET (past the header's three) stalls: no byte, no close
    start = time.monotonic()
    code, _, err = pifi(capsys, "cache", "pull", "lab/layers", "--cache-dir", str(tmp_path / "c2"), "-q")
    elapsed = time.monotonic() - start
    hub.faults.clear()
    one_line_error(code, err, "failed 5 times in a row without progress", "no data for 0.2 s, HF_HUB_DOWNLOAD_TIMEOUT")
    assert ".incoming" not in err and "not a pifi artifact" not in err and elapsed < 20
    assert LayerCache(tmp_path / "c2").keys() == [] and list((tmp_path / "c2" / ".incoming").iterdir()) == []


def test_a_runs_layer_downgraded_to_format_1_is_refused_on_pull(tmp_path, hub, llama_dir):
    from pifi_train.run_share import pull_run

    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "c")
    forged = forge(art.path, tmp_path / "f.safetensors", format_1=True, swap=(K, V))  # same data hash as the original
    share = {"pifi_share": 1, "layers": [{"sha256": art.data_sha256, "source": str(llama_dir), "source_kind": "local",
                                          "repo_path": "layers/layer-0.safetensors"}]}
    hub.add_repo("lab/run", {"pifi_share.json": json.dumps(share).encode(),
                             "layers/layer-0.safetensors": forged.read_bytes()})
    with pytest.raises(ArtifactError, match="lab/run/layers/layer-0.safetensors is a format-1 artifact"):
        pull_run("hf://lab/run", cache_dir=tmp_path / "c")
