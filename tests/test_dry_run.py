"""pifi extract --dry-run: metadata and headers only (the server's log shows no tensor byte), the byte
count a real run then reads, the licence, its files and the gating."""

import json
import struct

import pytest

import cli
from pifi_extract.extract import extract_layers
from pifi_extract.dry_run import dry_run
from tiny_models import make_tiny_model

REPO = "org/gated-llama"
TOKEN = "hf_gate_token"
CARD = b"---\nlicense: llama3.1\n---\n# tiny llama\n"


@pytest.fixture(scope="module")
def llama_files(tmp_path_factory):
    folder = make_tiny_model("llama", tmp_path_factory.mktemp("models") / "llama", num_layers=4)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return {**files, "LICENSE": b"LLAMA 3.1 COMMUNITY LICENSE\n", "USE_POLICY.md": b"# use policy\n",
            "README.md": CARD}


def _served(hub, suffix=".safetensors"):
    return sum(n for path, n in hub.bytes_by_path.items() if path.endswith(suffix))


def _shard_ranges(hub, files):
    """(shard, first, last, first tensor byte) of every ranged GET of a shard, from the server's request log."""
    for r in hub.requests("GET"):
        name = r.path.rsplit("/", 1)[-1]
        if name.endswith(".safetensors"):
            first, last = (int(x) for x in r.range.removeprefix("bytes=").split("-"))
            yield name, first, last, 8 + struct.unpack("<Q", files[name][:8])[0]


def _past_headers(hub, files) -> list[str]:
    """Every requested range that reaches past its shard's header (into tensor bytes)."""
    return [f"{name} {first}-{last}" for name, first, last, data in _shard_ranges(hub, files) if last >= data]


def test_dry_run_reads_headers_only_and_predicts_the_real_byte_count(hub_server, llama_files, tmp_path, capsys):
    hub_server.add_repo(REPO, llama_files, gated_token=TOKEN)
    result = dry_run(REPO, [-1, 1], token=TOKEN)
    assert result.commit == hub_server.head(REPO) and result.source_kind == "hub"
    assert result.license == "llama3.1" and result.gated == "manual"
    assert sorted(result.license_files) == ["LICENSE", "USE_POLICY.md"]
    assert [layer.layer_index for layer in result.layers] == [3, 1]
    assert {"self_attn.q_proj.weight", "final_norm.weight"} <= {t["name"] for t in result.layers[0].tensors}
    gets = [r for r in hub_server.requests("GET") if r.path.endswith(".safetensors")]
    assert gets and all(r.range for r in gets)  # range reads only
    touched = {r.path.rsplit("/", 1)[-1] for r in gets}
    assert touched == {s for layer in result.layers for s in layer.shards}
    assert _past_headers(hub_server, llama_files) == []  # not one tensor byte requested
    assert _served(hub_server) == sum(8 + struct.unpack("<Q", llama_files[f][:8])[0] for f in touched)  # exactly
    assert not hub_server.requests("HEAD") and len(hub_server.requests("GET", "/api/models/")) == 1  # gating too
    assert not list(tmp_path.iterdir())  # nothing written

    hub_server.reset_counters()
    extract_layers(REPO, [-1, 1], lambda plan: tmp_path / f"layer{plan.layer_index}.safetensors", token=TOKEN)
    tensor_reads = [(f, a, b) for f, a, b, data in _shard_ranges(hub_server, llama_files) if a >= data]
    assert sum(b + 1 - a for _, a, b in tensor_reads) == result.source_bytes  # what the real run read, exactly

    hub_server.reset_counters()
    cli.main(["extract", "--llm", REPO, "--layer", "-1", "--token", TOKEN, "--dry-run", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["source_bytes"] == result.layers[0].source_bytes and printed["gated"] == "manual"
    assert _past_headers(hub_server, llama_files) == []
    assert _served(hub_server) == sum(  # headers of the one layer's shards only
        n for path, n in hub_server.bytes_by_path.items() if path.rsplit("/", 1)[-1] in result.layers[0].shards)
