"""pifi adopts only what it created (or a person adopts explicitly) and deletes only files it wrote, by name AND
content: a Hugging Face hub cache and a folder with a forged marker keep every file (all in tmp folders only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layer_cache import LayerCache, get_or_extract, prune
from layer_cache.ownership import MARKER_NAME, TAG_NAME, write_marker
from pifi_extract.errors import CacheError
from test_cache_cli import one_line_error, pifi
from test_cache_safety import snapshot

SHA = "0123456789abcdef0123456789abcdef01234567"


def hf_hub_cache(root: Path) -> Path:
    """The shape of ~/.cache/huggingface/hub: models--org--name/{refs/main, blobs/, snapshots/}, as the issue found it."""
    for repo in ("models--org--llama", "models--me--thesis"):
        (root / repo / "refs").mkdir(parents=True)
        (root / repo / "refs" / "main").write_text(SHA)
        (root / repo / "blobs").mkdir()
        (root / repo / "snapshots").mkdir()
    return root


def test_a_hugging_face_cache_is_not_adopted_and_prune_deletes_nothing(tmp_path, capsys, llama_dir):
    hub = hf_hub_cache(tmp_path / "hub")
    before = snapshot(hub)
    for args in (["cache", "prune"], ["cache", "prune", "--max-size", "0"], ["cache", "prune", "--dry-run"]):
        code, _, err = pifi(capsys, *args, "--cache-dir", str(hub))
        one_line_error(code, err, "is not a pifi cache folder", "pifi cache adopt")
    code, _, err = pifi(capsys, "cache", "adopt", "--cache-dir", str(hub))
    one_line_error(code, err, "refusing to adopt", "blobs holds nothing pifi wrote")
    code, _, err = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "0", "--cache-dir", str(hub), "-q")
    one_line_error(code, err, "is not a pifi cache folder")  # nothing is written into it either
    assert snapshot(hub) == before and not (hub / MARKER_NAME).exists()


def test_a_forged_marker_lets_prune_delete_only_what_pifi_wrote(tmp_path, llama_dir):
    root = hf_hub_cache(tmp_path / "forged")
    write_marker(root)  # someone (or some tool) wrote pifi's marker into it
    thesis = root / "models--me--thesis"
    (thesis / "refs" / "notes.txt").write_text("chapter 3: rewrite the intro\n")
    (thesis / SHA).mkdir()
    (thesis / SHA / "layer-0.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      mine")  # not pifi's
    (thesis / SHA / "model.json").write_text('{"source": "someone/else", "kind": "hub"}')  # names another folder
    (thesis / SHA / ".layer-3.safetensors.pifi-ok").write_text("my own hidden notes")  # pifi's name, not its content
    (thesis / "drafts").mkdir()  # a user's empty folder of a commit-like name
    art = get_or_extract(str(llama_dir), 0, cache_dir=root)  # one real artifact beside them
    before = {k: v for k, v in snapshot(root).items() if not k.startswith("local--")}

    result = prune(max_size="0", cache_dir=root)
    assert [e.key for e in result.removed] == [art.key] and not art.path.exists()
    assert all(str(p).startswith(str(root / "local--")) for p in result.paths), result.paths
    assert {k: v for k, v in snapshot(root).items() if not k.startswith("local--")} == before
    assert (root / "models--org--llama" / "refs" / "main").read_text() == SHA
    assert (thesis / "refs" / "notes.txt").is_file() and (thesis / "blobs").is_dir()


def test_a_ref_is_deleted_only_with_the_commit_it_names(tmp_path, llama_dir):
    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    source_dir = art.path.parent.parent
    refs = source_dir / "refs"
    refs.mkdir()
    (refs / "main").write_text(art.key.commit)  # pifi's shape of a ref: one commit name
    (refs / "other").write_text("f" * 40)  # names a commit that is not here: not pifi's to remove
    (refs / "notes.txt").write_text(f"{art.key.commit} was a good run\n")  # mentions it, is not a ref
    prune(max_size="0", cache_dir=cache)
    assert sorted(os.listdir(refs)) == ["notes.txt", "other"] and not art.path.parent.exists()


def test_rm_refuses_a_file_of_an_artifact_name_that_pifi_did_not_write(tmp_path, llama_dir):
    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    os.chmod(art.path, 0o644)
    art.path.write_bytes(b"my own data, not an artifact")
    art.path.with_name(f".{art.path.name}.pifi-ok").unlink()
    with pytest.raises(CacheError, match="is not a pifi artifact"):
        LayerCache(cache).remove(art.key)
    assert art.path.read_bytes() == b"my own data, not an artifact"


def test_an_old_pifi_cache_is_used_after_an_explicit_adopt(tmp_path, capsys, llama_dir):
    from layer_cache import adopt

    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    for name in (MARKER_NAME, TAG_NAME):  # a cache written before the marker existed
        (cache / name).unlink()
    code, _, err = pifi(capsys, "cache", "prune", "--max-size", "0", "--cache-dir", str(cache))
    one_line_error(code, err, "pifi cache adopt")
    code, out, _ = pifi(capsys, "cache", "adopt", "--cache-dir", str(cache))
    assert code == 0 and "adopted" in out and (cache / MARKER_NAME).is_file()
    assert adopt(cache_dir=cache) is False  # already pifi's
    assert [e.key for e in prune(max_size="0", cache_dir=cache).removed] == [art.key]


def test_an_empty_existing_folder_becomes_a_cache(tmp_path, llama_dir):
    (tmp_path / "empty").mkdir()
    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "empty")
    assert art.path.is_file() and (tmp_path / "empty" / MARKER_NAME).is_file()


@pytest.mark.parametrize("no_cache", [[], ["--no-cache"]])
def test_o_onto_another_keys_artifact_in_the_cache_is_refused(tmp_path, capsys, llama_dir, no_cache):
    cache = tmp_path / "c"
    last = get_or_extract(str(llama_dir), -1, cache_dir=cache)
    before = snapshot(cache)
    for target in (last.path, cache / "mine.safetensors", cache):  # an artifact, a new file, the folder itself
        code, _, err = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "0", "-o", str(target),
                            "--cache-dir", str(cache), "-q", *no_cache)
        one_line_error(code, err, "refusing to write to", "inside the pifi cache")
    assert snapshot(cache) == before  # not even layer 0 was extracted: refused before any byte
    code, out, _ = pifi(capsys, "inspect", f"{llama_dir}:-1", "--json", "--cache-dir", str(cache))
    assert code == 0 and f'"layer_index": {last.key.layer_index}' in out


@pytest.mark.parametrize("no_cache", [[], ["--no-cache"]])
def test_o_onto_the_sources_own_shard_is_refused(tmp_path, capsys, llama_dir, no_cache, monkeypatch):
    shard = sorted(llama_dir.glob("*.safetensors"))[0]
    before = snapshot(llama_dir)
    code, _, err = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "0", "-o", str(shard),
                        "--cache-dir", str(tmp_path / "c"), "-q", *no_cache)
    one_line_error(code, err, "refusing to write to", "inside the source model")
    monkeypatch.chdir(llama_dir)  # no -o: the default file would land in the source folder (--no-cache)
    code, _, err = pifi(capsys, "extract", "--llm", ".", "--layer", "0", "--cache-dir", str(tmp_path / "c"), "-q",
                        "--no-cache")
    one_line_error(code, err, "inside the source model")
    assert snapshot(llama_dir) == before and LayerCache(tmp_path / "c").keys() == []


def test_place_copy_refuses_a_protected_place(tmp_path, llama_dir):
    from layer_cache import place_copy
    from layer_cache.get_or_extract import protected_places
    from pifi_extract.errors import StorageError

    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "c")
    (tmp_path / "link").symlink_to(llama_dir)  # a link into the source does not hide it
    with pytest.raises(StorageError, match="inside the source model"):
        place_copy(art.path, tmp_path / "link" / "x.safetensors", protected_places(str(llama_dir)))
    assert not (llama_dir / "x.safetensors").exists()
