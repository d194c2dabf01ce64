"""Sharing through the Hub without losing or downgrading anything: a pull never replaces a cached artifact with
other tensors, and a header-digest downgrade to format 1 is refused (loopback Hub, tmp folders only)."""

from __future__ import annotations

import pytest

from forge import forge
from layer_cache import LayerCache, get_or_extract, pull
from pifi_extract.errors import CacheError
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
