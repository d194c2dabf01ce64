"""The cache library on local folders: root precedence, layout and keys, hits, integrity, references, rm, prune."""

from __future__ import annotations

import os
import time
from pathlib import Path, PurePosixPath

import pytest

from layer_cache import (
    CacheKey,
    LayerCache,
    cache_root,
    get_or_extract,
    get_or_extract_layers,
    parse_duration,
    parse_size,
    prune,
    resolve_key,
    resolve_reference,
    verify,
)
from layer_cache.layout import artifact_filename, dtype_tag, parse_artifact_filename, parse_rel_path, source_dir_name
from layer_cache.prune import choose
from pifi_extract import extract_layer, load_artifact_tensors, read_artifact
from pifi_extract.errors import ArtifactError, CacheError, ConfigError, LayerIndexError
from tiny_models import make_tiny_model


def _flip_last_byte(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        b = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([b[0] ^ 0xFF]))


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("PIFI_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("PIFI_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "pifi"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "pifi"


def test_layout_names_are_browsable_and_parse_back():
    key = CacheKey("meta-llama/Llama-3.1-8B", "hub", "a" * 40, 31, "bf16")
    assert str(key.rel_path) == f"models--meta-llama--Llama-3.1-8B/{'a' * 40}/layer-31.bf16.safetensors"
    assert parse_rel_path(key.rel_path) == ("models--meta-llama--Llama-3.1-8B", "a" * 40, 31, "bf16")
    assert key.display() == f"meta-llama/Llama-3.1-8B@{'a' * 12}:31:bf16"
    assert artifact_filename(3) == "layer-3.safetensors" and parse_artifact_filename("layer-3.safetensors") == (3, "keep")
    assert parse_artifact_filename(".layer-3.safetensors.pifi-tmp-12-ab") is None
    assert source_dir_name("/data/models/my model", "local").startswith("local--my-model--")
    assert dtype_tag("bf16", "BF16") == "keep" and dtype_tag("bf16", "F32") == "bf16" and dtype_tag("keep") == "keep"
    with pytest.raises(ConfigError):
        dtype_tag("int4")


def test_hit_miss_dtype_alias_and_fingerprint(tmp_path, llama_dir):
    cache_dir = tmp_path / "cache"
    a, b = get_or_extract_layers(str(llama_dir), [-1, 1], cache_dir=cache_dir)
    assert not a.hit and not b.hit and (a.key.layer_index, b.key.layer_index) == (3, 1)
    assert a.path.parent.parent.name.startswith("local--llama--") and a.path.name == "layer-3.safetensors"
    again = get_or_extract(str(llama_dir), 3, cache_dir=cache_dir)
    assert again.hit and again.path == a.path
    assert get_or_extract(str(llama_dir), -1, dtype="fp32", cache_dir=cache_dir).path == a.path  # fp32 source
    bf16 = get_or_extract(str(llama_dir), -1, dtype="bf16", cache_dir=cache_dir)
    assert not bf16.hit and bf16.path.name == "layer-3.bf16.safetensors"
    with pytest.raises(LayerIndexError, match="valid indices are -4..3"):
        get_or_extract(str(llama_dir), 4, cache_dir=cache_dir)


def test_changed_local_folder_is_a_new_key(tmp_path, llama_dir):
    model = make_tiny_model("llama", tmp_path / "m", num_layers=2, seed=1)
    first = get_or_extract(str(model), -1, cache_dir=tmp_path / "c")
    config = model / "config.json"
    os.utime(config, ns=(time.time_ns(), config.stat().st_mtime_ns + 10**9))  # touched: maybe changed
    second = get_or_extract(str(model), -1, cache_dir=tmp_path / "c")
    assert not second.hit and second.key.commit != first.key.commit
    assert resolve_reference(f"{model}:-1", cache_dir=tmp_path / "c").path == second.path  # the current state wins


def test_flipped_byte_caught_by_verify_and_refused_on_use(tmp_path, llama_dir):
    cache_dir = tmp_path / "cache"
    art = get_or_extract(str(llama_dir), -1, cache_dir=cache_dir)
    assert [r.ok for r in verify(cache_dir=cache_dir)] == [True]
    _flip_last_byte(art.path)
    results = verify(cache_dir=cache_dir)
    assert [r.ok for r in results] == [False] and "corrupt" in results[0].error
    with pytest.raises(ArtifactError, match=r"pifi cache rm .*:3"):
        get_or_extract(str(llama_dir), -1, cache_dir=cache_dir)
    with pytest.raises(ArtifactError, match="corrupt"):
        resolve_reference(f"{llama_dir}:-1", cache_dir=cache_dir)
    with pytest.raises(ArtifactError, match="corrupt"):
        load_artifact_tensors(art.path)
    key = resolve_key(f"{llama_dir}:-1", cache_dir=cache_dir)  # rm must still find it
    LayerCache(cache_dir).remove(key)
    assert LayerCache(cache_dir).keys() == [] and not art.path.parent.parent.exists()
    assert not get_or_extract(str(llama_dir), -1, cache_dir=cache_dir).hit


def test_memo_makes_use_cheap_until_the_file_changes(tmp_path, llama_dir, monkeypatch):
    art = get_or_extract(str(llama_dir), -1, cache_dir=tmp_path / "c")
    import layer_cache.integrity as integrity

    calls = []
    real = integrity.data_sha256
    monkeypatch.setattr(integrity, "data_sha256", lambda *a: calls.append(a) or real(*a))
    get_or_extract(str(llama_dir), -1, cache_dir=tmp_path / "c")
    assert calls == []  # size + mtime memo: no hashing on a hit
    os.utime(art.path, ns=(time.time_ns(), art.path.stat().st_mtime_ns + 10**9))
    get_or_extract(str(llama_dir), -1, cache_dir=tmp_path / "c")
    assert len(calls) == 1  # changed stamp: hashed once, memo refreshed
    get_or_extract(str(llama_dir), -1, cache_dir=tmp_path / "c")
    assert len(calls) == 1


def test_every_reference_form_resolves(tmp_path, llama_dir):
    cache_dir = tmp_path / "cache"
    art = get_or_extract(str(llama_dir), -1, cache_dir=cache_dir)
    rel = str(art.key.rel_path)
    outside = extract_layer(str(llama_dir), 0, tmp_path / "plain.safetensors").path
    forms = {
        str(art.path): art.path,
        rel: art.path,
        f"{llama_dir}:-1": art.path,
        f"{llama_dir}:3": art.path,
        f"{llama_dir}@{art.key.commit[:6]}:-1": art.path,
        art.reference: art.path,
        f"{llama_dir}:-1:keep": art.path,
        str(outside): outside,
    }
    for ref, expected in forms.items():
        resolved = resolve_reference(ref, cache_dir=cache_dir)
        assert resolved.path.resolve() == expected.resolve(), ref
    assert resolve_reference(str(outside), cache_dir=cache_dir).cached is None
    assert resolve_reference(rel, cache_dir=cache_dir).cached.key == art.key


def test_unknown_and_ambiguous_references_name_what_exists(tmp_path, llama_dir):
    cache_dir = tmp_path / "cache"
    keep = get_or_extract(str(llama_dir), -1, cache_dir=cache_dir)
    bf16 = get_or_extract(str(llama_dir), -1, dtype="bf16", cache_dir=cache_dir)
    with pytest.raises(CacheError, match="ambiguous: it matches 2") as err:
        resolve_reference(f"{llama_dir}:-1", cache_dir=cache_dir)
    assert keep.reference in str(err.value) and bf16.reference in str(err.value)
    assert resolve_reference(f"{llama_dir}:-1:bf16", cache_dir=cache_dir).path == bf16.path
    with pytest.raises(CacheError, match=r"unknown artifact reference 'org/none:-1'.*holds: .*pifi cache ls"):
        resolve_reference("org/none:-1", cache_dir=cache_dir)
    with pytest.raises(CacheError, match="not a file, a cache key"):
        resolve_reference("no-such-file.safetensors", cache_dir=cache_dir)
    with pytest.raises(CacheError, match="is empty"):
        resolve_reference("org/none:-1", cache_dir=tmp_path / "empty")
    not_artifact = tmp_path / "notes.txt"
    not_artifact.write_text("hello")
    with pytest.raises(ArtifactError):
        resolve_reference(str(not_artifact), cache_dir=cache_dir)


def test_prune_choice_and_parsing():
    assert parse_duration("30d") == 30 * 86400 and parse_duration("12h") == 43200 and parse_duration("2w") == 14 * 86400
    assert parse_size("20GB") == 20 * 10**9 and parse_size("1.5GiB") == int(1.5 * 2**30) and parse_size("512") == 512
    for bad in ("soon", "30y"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    with pytest.raises(ConfigError):
        parse_size("20 parsecs")

    class E:  # the fields choose() reads
        def __init__(self, name, size, last_used):
            self.name, self.size, self.last_used = name, size, last_used

    now = 1_000_000.0
    old, mid, new = E("old", 100, now - 40 * 86400), E("mid", 300, now - 5 * 86400), E("new", 200, now - 60)
    assert [e.name for e in choose([old, mid, new], now=now, older_than_s=30 * 86400, max_bytes=None)] == ["old"]
    assert [e.name for e in choose([old, mid, new], now=now, older_than_s=None, max_bytes=250)] == ["old", "mid"]
    assert choose([old, mid, new], now=now, older_than_s=None, max_bytes=None) == []


def test_prune_removes_least_recently_used_and_stale_temps(tmp_path, llama_dir):
    cache_dir = tmp_path / "cache"
    used_long_ago, recent = get_or_extract_layers(str(llama_dir), [0, 1], cache_dir=cache_dir)
    memo = used_long_ago.path.with_name(f".{used_long_ago.path.name}.pifi-ok")
    past = time.time() - 40 * 86400
    os.utime(memo, (past, past))
    stale = used_long_ago.path.with_name(".layer-2.safetensors.pifi-tmp-999999999-abcd0123")  # a dead writer's (8 hex, as pifi names them)
    stale.write_bytes(b"partial")
    os.utime(stale, (past, past))
    dry = prune(older_than="30d", dry_run=True, cache_dir=cache_dir)
    assert [e.key for e in dry.removed] == [used_long_ago.key] and used_long_ago.path.exists()
    result = prune(older_than="30d", cache_dir=cache_dir)
    assert [e.key for e in result.removed] == [used_long_ago.key] and result.temp_files_removed == 1
    assert [k.layer_index for k in LayerCache(cache_dir).keys()] == [1] and not stale.exists()
    assert prune(max_size="1KB", cache_dir=cache_dir).freed_bytes == recent.size
    assert LayerCache(cache_dir).keys() == []


def test_cache_entries_report_sizes_params_and_refs(tmp_path, llama_dir):
    art = get_or_extract(str(llama_dir), 2, cache_dir=tmp_path / "c")
    (entry,) = LayerCache(tmp_path / "c").entries()
    info = read_artifact(art.path)
    assert entry.size == art.path.stat().st_size and entry.num_parameters == info.num_parameters > 0
    data = entry.to_json()
    assert data["layer_index"] == 2 and data["kind"] == "local" and data["reference"] == art.reference
    assert PurePosixPath(data["path"]).name == "layer-2.safetensors"
