"""`pifi extract` end to end: local folders and the loopback Hub, exact bytes, range-only reads, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pifi_extract import (
    extract_layer,
    extract_layers,
    load_artifact_tensors,
    open_source,
    plan_layers,
    read_artifact,
    verify_artifact,
    write_artifact,
)
from pifi_extract.errors import (
    AccessDeniedError,
    ArtifactError,
    CorruptFileError,
    NetworkError,
    OfflineError,
    SourceNotFoundError,
    StorageError,
    UnsupportedModelError,
)
from tiny_models import shards_of_layer, weight_map

REPO = "org/tiny-llama"


@pytest.fixture(scope="module")
def llama_state(llama_dir) -> dict[str, torch.Tensor]:
    state = {}
    for shard in sorted(llama_dir.glob("*.safetensors")):
        state.update(load_file(shard))
    return state


@pytest.fixture
def hub(hub_server, llama_dir, monkeypatch):
    hub_server.add_repo(REPO, llama_dir)
    return hub_server


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _assert_layer_equals_model(artifact: Path, state: dict[str, torch.Tensor], index: int) -> None:
    layer, norm = load_artifact_tensors(artifact)
    expected = {k[len(f"model.layers.{index}.") :]: v for k, v in state.items() if k.startswith(f"model.layers.{index}.")}
    assert sorted(layer) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(layer[name], tensor), name
    assert torch.equal(norm["weight"], state["model.norm.weight"])


@pytest.mark.parametrize("layer, index", [(-1, 3), (1, 1)])
def test_local_folder_extracts_the_exact_tensors(tmp_path, llama_dir, llama_state, layer, index):
    result = extract_layer(str(llama_dir), layer, tmp_path / "a.safetensors")
    info = result.info
    assert (info.layer_index, info.num_layers, info.provenance["layer_requested"]) == (index, 4, layer)
    assert info.provenance["source_kind"] == "local" and info.model_type == "llama"
    assert info.config == json.loads((llama_dir / "config.json").read_text())
    _assert_layer_equals_model(result.path, llama_state, index)
    verify_artifact(result.path)
    assert _leftovers(tmp_path) == ["a.safetensors"]


def test_layer_straddling_two_shards_and_dtype_conversion(tmp_path, llama_dir, llama_state):
    assert len(shards_of_layer(llama_dir, "model.layers.3.")) >= 2
    result = extract_layer(str(llama_dir), -1, tmp_path / "b.safetensors", dtype="bf16")
    layer, _ = load_artifact_tensors(result.path)
    assert result.info.provenance["dtype"] == "BF16" and result.info.provenance["source_dtype"] == "F32"
    for name, tensor in layer.items():
        assert tensor.dtype == torch.bfloat16
        assert torch.equal(tensor, llama_state[f"model.layers.3.{name}"].to(torch.bfloat16))


def test_hub_reads_only_the_layer_bytes(tmp_path, hub, llama_dir):
    result = extract_layer(REPO, -1, tmp_path / "c.safetensors")
    info = result.info
    assert info.provenance["commit"] == hub.head(REPO) and info.provenance["source_kind"] == "hub"
    wm = weight_map(llama_dir)
    layer_files = shards_of_layer(llama_dir, "model.layers.3.") | {wm["model.norm.weight"]}
    assert set(info.provenance["files"]) == {"config.json", "model.safetensors.index.json", *layer_files}
    assert info.provenance["files"]["config.json"] == hub.etag(REPO, "config.json")
    served = {path.split("/", 2)[2]: n for path, n in hub.bytes_by_path.items()}
    assert set(served) == set(info.provenance["files"])  # no other shard is touched
    tensor_bytes = info.size - info.data_start
    header_bytes = sum(served[f] for f in layer_files) - tensor_bytes
    assert 0 < header_bytes < 2048 * len(layer_files)  # shard headers only, never a whole shard
    assert all(len(r.range or "") > 0 for r in hub.requests("GET") if r.path.endswith(".safetensors"))
    local = extract_layer(str(llama_dir), -1, tmp_path / "d.safetensors")
    assert local.info.data_sha256 == info.data_sha256


def test_several_layers_make_one_artifact_each(tmp_path, hub, llama_state):
    results = extract_layers(REPO, [0, -1], lambda plan: tmp_path / f"l{plan.layer_index}.safetensors")
    assert [r.info.layer_index for r in results] == [0, 3]
    for r in results:
        _assert_layer_equals_model(r.path, llama_state, r.info.layer_index)


def test_dropped_bodies_are_resumed_where_they_stopped(tmp_path, hub, llama_state):
    reference = extract_layer(REPO, -1, tmp_path / "ref.safetensors").info.data_sha256
    hub.reset_counters()
    hub.drop_every(2, after_bytes=100)
    result = extract_layer(REPO, -1, tmp_path / "e.safetensors")
    assert result.info.data_sha256 == reference
    _assert_layer_equals_model(result.path, llama_state, 3)
    resumed = [r for r in hub.requests("GET", ".safetensors") if r.range and not r.range.startswith("bytes=0-")]
    assert resumed, "expected resumed range requests"


def test_network_failing_past_the_retry_budget_leaves_nothing(tmp_path, hub):
    out = tmp_path / "out"
    out.mkdir()
    hub.drop_every(1, after_bytes=0)
    with pytest.raises(NetworkError, match="failed 5 times in a row without progress"):
        extract_layer(REPO, -1, out / "f.safetensors")
    assert _leftovers(out) == []


def _biggest_shard(folder: Path) -> Path:
    return max(folder.glob("*.safetensors"), key=lambda p: p.stat().st_size)


def test_a_piece_cut_ten_times_in_a_row_completes_when_each_cut_moved_bytes(hub, llama_dir):
    from pifi_extract.hub_source import HubSource

    shard = _biggest_shard(llama_dir)
    source = HubSource(REPO)
    hub.reset_counters()
    hub.drop_every(1, after_bytes=1000, times=10)  # every attempt delivers 1000 bytes, then the body is cut
    data = source.read(shard.name, 0, shard.stat().st_size)
    assert bytes(data) == shard.read_bytes()
    gets = hub.requests("GET", shard.name)
    assert len(gets) >= 11 and sum(r.body_bytes < 2000 for r in gets) >= 10  # ten cut bodies, then the rest


def test_five_cuts_without_progress_fail_with_one_line(hub, llama_dir):
    shard = _biggest_shard(llama_dir)
    from pifi_extract.hub_source import HubSource

    source = HubSource(REPO)
    hub.reset_counters()
    hub.drop_every(1, after_bytes=0, times=5)  # five cuts before any byte: the budget is spent
    with pytest.raises(NetworkError) as caught:
        source.read(shard.name, 0, shard.stat().st_size)
    assert len(hub.requests("GET", shard.name)) == 5
    line = caught.value.one_line()
    assert "\n" not in line and "failed 5 times in a row without progress" in line


def test_backoff_doubles_and_is_capped():
    from pifi_extract.hub_source import MAX_BACKOFF, retry_delay

    assert [retry_delay(0.5, k) for k in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retry_delay(0.5, 30) == MAX_BACKOFF


def test_a_file_changing_mid_read_is_an_error_not_a_mix(tmp_path, hub, llama_dir):
    shard = sorted(shards_of_layer(llama_dir, "model.layers.3."))[-1]
    original = (llama_dir / shard).read_bytes()
    source = open_source(REPO)
    (plan,) = plan_layers(source, [-1])  # the shard headers are read now...
    hub.replace_file(REPO, shard, original[:-4] + b"\0\0\0\0", new_commit=False)  # ...the bytes change under them
    with pytest.raises(NetworkError, match="changed while it was being read"):
        write_artifact(source, plan, tmp_path / "g.safetensors")
    assert _leftovers(tmp_path) == []


def test_interruption_leaves_no_file(tmp_path, llama_dir):
    def interrupt(advance: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_layer(str(llama_dir), -1, tmp_path / "h.safetensors", progress=interrupt)
    assert _leftovers(tmp_path) == []


def test_an_interrupt_while_the_temp_file_is_allocated_leaves_no_file(tmp_path, llama_dir, monkeypatch):
    """Ctrl-C during posix_fallocate (a 138 MB temp file once stayed behind, zero-filled): `with` never calls
    __exit__ when __enter__ raises, so __enter__ cleans up itself."""
    import pifi_extract.writer as writer

    def interrupted(fd, offset, length):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer.os, "posix_fallocate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_layer(str(llama_dir), -1, tmp_path / "h.safetensors")
    assert _leftovers(tmp_path) == []


def test_a_signal_right_after_the_temp_file_is_created_leaves_no_file(tmp_path, llama_dir, monkeypatch):
    """SIGINT between `os.open` creating the temp file and the writer recording it: held back until recorded."""
    import signal

    import pifi_extract.writer as writer

    real_open = os.open

    def open_then_sigint(path, flags, mode=0o777, *args, **kwargs):
        fd = real_open(path, flags, mode, *args, **kwargs)
        if writer.TMP_MARKER in str(path):
            signal.raise_signal(signal.SIGINT)  # Python runs the handler at once, before this returns
        return fd

    monkeypatch.setattr(writer.os, "open", open_then_sigint)
    with pytest.raises(KeyboardInterrupt):
        extract_layer(str(llama_dir), -1, tmp_path / "h.safetensors")
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []


def test_sigterm_during_extract_says_so_in_one_line_and_keeps_nothing(tmp_path, hub, monkeypatch, capsys):
    import signal

    import cli
    import pifi_extract.pipeline as pipeline

    real_copy = pipeline._copy
    handler_before = signal.getsignal(signal.SIGTERM)

    def copy_after_sigterm(*args):
        os.kill(os.getpid(), signal.SIGTERM)  # a job scheduler's `kill`, while the reads run
        return real_copy(*args)

    monkeypatch.setattr(pipeline, "_copy", copy_after_sigterm)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["extract", "--llm", REPO, "--layer", "-1", "--no-cache", "-o", str(tmp_path / "l.safetensors")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 130
    assert err.strip() == "error: interrupted; nothing partial was kept (temporary files removed)"
    assert _leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == handler_before  # cli.main put the previous handler back


def test_gated_repo_needs_the_token(tmp_path, hub_server, llama_dir):
    hub_server.add_repo("org/gated", llama_dir, gated_token="hf_secret")
    with pytest.raises(AccessDeniedError, match="gated.*hf auth login"):
        extract_layer("org/gated", -1, tmp_path / "i.safetensors")
    assert _leftovers(tmp_path) == []
    ok = extract_layer("org/gated", -1, tmp_path / "i.safetensors", token="hf_secret")
    assert ok.info.layer_index == 3


def test_unknown_repo_and_revision(tmp_path, hub):
    with pytest.raises(SourceNotFoundError, match="not found"):
        extract_layer("org/nope", -1, tmp_path / "x.safetensors")
    with pytest.raises(SourceNotFoundError, match="revision 'v9' not found"):
        extract_layer(REPO, -1, tmp_path / "x.safetensors", revision="v9")
    pinned = extract_layer(REPO, -1, tmp_path / "x.safetensors", revision=hub.head(REPO))
    assert pinned.info.provenance["revision"] == hub.head(REPO)


def test_pickle_only_repo_is_refused(tmp_path, hub_server, llama_dir):
    files = {"config.json": (llama_dir / "config.json").read_bytes(), "pytorch_model.bin": b"\x80\x04not loaded"}
    hub_server.add_repo("org/pickle", files)
    with pytest.raises(UnsupportedModelError, match="never loads pickles"):
        extract_layer("org/pickle", -1, tmp_path / "x.safetensors")
    assert hub_server.bytes_for("org/pickle", "pytorch_model.bin") == 0


def _repo_with(llama_dir: Path, **changes: bytes) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in llama_dir.iterdir() if p.is_file()}
    files.update(changes)
    return files


def test_corrupt_header_and_inconsistent_index_are_refused(tmp_path, hub_server, llama_dir):
    shard = sorted(shards_of_layer(llama_dir, "model.layers.3."))[0]
    hub_server.add_repo("org/corrupt", _repo_with(llama_dir, **{shard: b"\xff" * 8 + b"{}"}))
    with pytest.raises(CorruptFileError, match="header length"):
        extract_layer("org/corrupt", -1, tmp_path / "x.safetensors")
    index = json.loads((llama_dir / "model.safetensors.index.json").read_text())
    name = next(k for k in index["weight_map"] if k.startswith("model.layers.3."))
    other = next(f for f in sorted(set(index["weight_map"].values())) if f not in shards_of_layer(llama_dir, "model.layers.3."))
    index["weight_map"][name] = other
    hub_server.add_repo("org/inconsistent", _repo_with(llama_dir, **{"model.safetensors.index.json": json.dumps(index).encode()}))
    with pytest.raises(CorruptFileError, match="does not contain it"):
        extract_layer("org/inconsistent", -1, tmp_path / "x.safetensors")
    index["weight_map"][name] = "../../etc/passwd"
    hub_server.add_repo("org/escape", _repo_with(llama_dir, **{"model.safetensors.index.json": json.dumps(index).encode()}))
    with pytest.raises(CorruptFileError, match="unsafe path"):
        extract_layer("org/escape", -1, tmp_path / "x.safetensors")
    assert _leftovers(tmp_path) == []


def test_single_file_checkpoint(tmp_path, llama_dir, llama_state):
    folder = tmp_path / "single"
    folder.mkdir()
    (folder / "config.json").write_bytes((llama_dir / "config.json").read_bytes())
    save_file(llama_state, str(folder / "model.safetensors"))
    result = extract_layer(str(folder), 2, tmp_path / "s.safetensors")
    _assert_layer_equals_model(result.path, llama_state, 2)


def test_offline_with_nothing_local(tmp_path, hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.reset_counters()
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE=1"):
        extract_layer(REPO, -1, tmp_path / "x.safetensors")
    assert hub.log == []


def test_unwritable_output_and_not_an_artifact(tmp_path, llama_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot write"):
        extract_layer(str(llama_dir), -1, blocker / "sub" / "x.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ArtifactError, match="not a pifi artifact"):
        read_artifact(plain)


def test_flipped_byte_fails_verification(tmp_path, llama_dir):
    path = extract_layer(str(llama_dir), -1, tmp_path / "v.safetensors").path
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt"):
        load_artifact_tensors(path)


def _pifi(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", *args],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
    )


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, hub):
    proc = _pifi("extract", "--llm", "org/nope", "--layer", "-1", "-o", str(tmp_path / "x.safetensors"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: repository 'org/nope' not found"), proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _pifi("extract", "--llm", REPO, "--layer", "99", "-o", str(tmp_path / "x.safetensors"))
    assert proc.returncode == 2 and "valid indices are -4..3" in proc.stderr
    debug = _pifi("extract", "--llm", "org/nope", "--layer", "-1", PIFI_DEBUG="1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    assert _leftovers(tmp_path) == []


def test_cli_extract_then_inspect(tmp_path, hub):
    out = tmp_path / "art.safetensors"
    proc = _pifi("extract", "--llm", REPO, "--layer", "-1", "-o", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout and "llama layer 3 of 4" in proc.stdout
    shown = _pifi("inspect", str(out), "--json")
    data = json.loads(shown.stdout)
    assert data["provenance"]["commit"] == hub.head(REPO)
    assert data["tensors"]["self_attn.q_proj.weight"] == ["F32", [64, 64]]
    assert data["layer_config"]["num_key_value_heads"] == 2


def test_cli_refuses_an_unsupported_architecture_in_one_line(tmp_path, llama_dir):
    folder = tmp_path / "mamba"
    folder.mkdir()
    config = json.loads((llama_dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "mamba"}))
    for f in llama_dir.glob("*.safetensors*"):
        (folder / f.name).symlink_to(f)
    proc = _pifi("extract", "--llm", str(folder), "--layer", "-1", "-o", str(tmp_path / "x.safetensors"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unsupported architecture model_type='mamba'" in proc.stderr
    assert "llama" in proc.stderr and not (tmp_path / "x.safetensors").exists()


def test_lfs_redirects_to_storage_as_on_the_real_hub(tmp_path, hub, llama_state):
    hub.redirect_lfs = True
    hub.drop_every(3, after_bytes=50)  # resumed reads follow the redirect again
    result = extract_layer(REPO, -1, tmp_path / "r.safetensors")
    _assert_layer_equals_model(result.path, llama_state, 3)
    assert any(r.status == 302 for r in hub.requests("GET", "/resolve/"))
    assert all(r.status == 206 for r in hub.requests("GET", "/cdn/") if r.body_bytes)
    # the storage URL is reused: one redirect per shard file, every later range goes straight to storage
    resolved = [r for r in hub.requests("GET", "/resolve/") if ".safetensors" in r.path and "index" not in r.path]
    assert len(resolved) == len({r.path for r in resolved}) and len(hub.requests("GET", "/cdn/")) > len(resolved)


def test_an_expired_storage_url_is_asked_for_again(hub, llama_dir):
    from pifi_extract.hub_source import HubSource

    hub.redirect_lfs = True
    shard = max(llama_dir.glob("*.safetensors"), key=lambda p: p.stat().st_size)
    source = HubSource(REPO)
    assert bytes(source.read(shard.name, 0, 100)) == shard.read_bytes()[:100]
    hub.reset_counters()
    hub.fail_next(1, 403, path_contains="/cdn/")  # signed storage URLs expire
    assert bytes(source.read(shard.name, 100, 5000)) == shard.read_bytes()[100:5000]
    assert [r.status for r in hub.requests("GET")] == [403, 302, 206]


def test_the_data_is_hashed_while_it_arrives_no_final_pass(tmp_path, hub, monkeypatch):
    import pifi_extract.writer as writer

    def no_full_pass(*args, **kwargs):
        raise AssertionError("the writer re-read the whole data section")

    monkeypatch.setattr(writer, "data_sha256", no_full_pass)
    hub.drop_every(3, after_bytes=50)  # resumed pieces land out of order
    result = extract_layer(REPO, -1, tmp_path / "e.safetensors")
    assert verify_artifact(result.path).data_sha256 == result.info.data_sha256


def test_piece_reader_gives_every_source_read_into(tmp_path):
    from pifi_extract.sources import PieceReader

    class Bytes(PieceReader):
        piece = 7

        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, path, start, end, *, progress=None):
            return self.data[start:end]

    got = bytearray(30)
    Bytes(bytes(range(40))).read_into("f", 5, 35, lambda off, piece: got.__setitem__(slice(off, off + len(piece)), piece))
    assert bytes(got) == bytes(range(5, 35))


def test_a_shard_header_is_one_read_unless_longer_than_the_guess(tmp_path):
    from pifi_extract.extract import HEADER_GUESS, read_safetensors_header
    from pifi_extract.sources import LocalSource

    reads = []

    class Counting(LocalSource):
        def read(self, path, start, end, *, progress=None):
            reads.append((path, start, end))
            return super().read(path, start, end, progress=progress)

    tensor = {"w": torch.zeros(64, 64)}
    save_file(tensor, tmp_path / "short.safetensors")
    save_file(tensor, tmp_path / "long.safetensors", metadata={"blob": "x" * (HEADER_GUESS + 100)})
    source = Counting(tmp_path)
    assert read_safetensors_header(source, "short.safetensors").tensors["w"].shape == (64, 64)
    assert len(reads) == 1
    reads.clear()
    header = read_safetensors_header(source, "long.safetensors")
    assert header.tensors["w"].shape == (64, 64) and len(header.metadata["blob"]) == HEADER_GUESS + 100
    assert len(reads) == 2 and reads[1][1] == reads[0][2]  # the rest, starting where the guess ended
