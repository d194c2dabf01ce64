"""pifi deletes only its own files: tagged roots, exact names, no links followed (every case in tmp folders only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layer_cache import LayerCache, get_or_extract, parse_size, prune
from layer_cache.ownership import MARKER_NAME, TAG_NAME, TAG_SIGNATURE
from pifi_extract.errors import CacheError, ConfigError
from test_cache_cli import one_line_error, pifi
from tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return make_tiny_model("llama", tmp_path_factory.mktemp("models") / "llama", num_layers=2)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below ``root`` (links not followed): kind and bytes / link target."""
    out = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(folder) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            elif p.is_file():
                out[rel] = ("file", p.read_bytes())
            else:  # FIFO, socket: never opened
                out[rel] = ("special", p.lstat().st_mode)
    return out


def user_files(root: Path) -> Path:
    """A folder of a user's precious files, nested two and three levels down (what old prune rmtree'd)."""
    for rel in ("docs/notes/a.txt", "docs/b.txt", "models--mine/stuff/c.txt", ".bashrc", "empty/inner"):
        p = root / rel
        if rel.endswith("inner"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"precious {rel}\n")
    return root


def test_a_new_cache_is_tagged(tmp_path, llama_dir):
    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "c")
    assert (tmp_path / "c" / TAG_NAME).read_text().startswith(TAG_SIGNATURE)
    assert (tmp_path / "c" / MARKER_NAME).is_file()
    assert art.path.is_file()


def test_prune_and_rm_refuse_a_root_that_is_not_a_pifi_cache(tmp_path, capsys, monkeypatch):
    home = user_files(tmp_path / "home")
    before = snapshot(home)
    monkeypatch.setenv("PIFI_CACHE", str(home))
    code, _, err = pifi(capsys, "cache", "prune")
    one_line_error(code, err, "is not a pifi cache folder")
    code, _, err = pifi(capsys, "cache", "prune", "--max-size", "0", "--dry-run")
    one_line_error(code, err, "is not a pifi cache folder")
    with pytest.raises(CacheError):
        LayerCache(home).tidy()
    assert snapshot(home) == before


def test_an_untagged_cache_is_refused_and_adopted_only_explicitly_and_only_pure(tmp_path, llama_dir):
    from layer_cache import adopt

    cache = tmp_path / "c"
    get_or_extract(str(llama_dir), 0, cache_dir=cache)
    for name in (MARKER_NAME, TAG_NAME):  # a cache written before the marker existed
        (cache / name).unlink()
    (cache / "notes.txt").write_text("mine")
    before = snapshot(cache)
    with pytest.raises(CacheError, match="not a pifi cache"):
        prune(max_size="0", cache_dir=cache)
    with pytest.raises(CacheError, match="refusing to adopt .*notes.txt is not a pifi source folder"):
        adopt(cache_dir=cache)
    assert snapshot(cache) == before
    (cache / "notes.txt").unlink()
    with pytest.raises(CacheError, match="not a pifi cache"):  # pure, but never adopted on its own
        prune(max_size="0", cache_dir=cache)
    assert adopt(cache_dir=cache) is True
    result = prune(max_size="0", cache_dir=cache)
    assert len(result.removed) == 1 and (cache / MARKER_NAME).is_file()
    assert LayerCache(cache).keys() == []


def test_symlinks_out_of_the_cache_are_never_followed(tmp_path, llama_dir):
    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    outside = user_files(tmp_path / "outside")
    # a moved model folder (with an artifact) and a link to a folder of user files, both inside the cache
    moved = tmp_path / "other-disk"
    os.rename(art.path.parent.parent, moved)
    (cache / art.path.parent.parent.name).symlink_to(moved)
    (cache / "models--evil--repo").symlink_to(outside)
    (moved / "somecommit").symlink_to(outside / "docs")
    before_out, before_moved = snapshot(outside), snapshot(moved)

    result = prune(max_size="0", cache_dir=cache)
    assert result.removed == [] and [e.key for e in result.skipped] == [art.key]
    with pytest.raises(CacheError, match="symbolic link"):
        LayerCache(cache).remove(art.key)
    assert snapshot(outside) == before_out and snapshot(moved) == before_moved
    assert (cache / "models--evil--repo").is_symlink()


def test_a_cache_inside_a_user_folder_leaves_everything_else(tmp_path, llama_dir, capsys):
    project = user_files(tmp_path / "project")
    cache = project / "cache"
    a0 = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    get_or_extract(str(llama_dir), 1, cache_dir=cache)
    (a0.path.parent / "my-notes.txt").write_text("kept")  # a user's file inside a commit folder
    stray = cache / "models--x--y" / "c0ffee" / "results"  # a user's folder of a pifi shape
    stray.mkdir(parents=True)
    (stray / "r.txt").write_text("kept too")
    outside = {k: v for k, v in snapshot(project).items() if not k.startswith("cache")}

    code, out, _ = pifi(capsys, "cache", "prune", "--max-size", "0", "--dry-run", "--cache-dir", str(cache))
    assert code == 0
    planned = sorted(line.split("would delete ", 1)[1] for line in out.splitlines() if line.startswith("would delete "))
    result = prune(max_size="0", cache_dir=cache)
    assert sorted(str(p) for p in result.paths) == planned  # --dry-run lists exactly what a real run removes
    assert len(result.removed) == 2 and LayerCache(cache).keys() == []
    assert {k: v for k, v in snapshot(project).items() if not k.startswith("cache")} == outside
    assert (a0.path.parent / "my-notes.txt").read_text() == "kept"  # its folder stays, the artifacts went
    assert not a0.path.exists() and (stray / "r.txt").read_text() == "kept too"
    assert planned and all(p.startswith(f"{cache}/") and "my-notes" not in p and "results" not in p for p in planned)
    assert {Path(p).name for p in planned} >= {"layer-0.safetensors", "layer-1.safetensors", "model.json"}


def test_prune_max_size_with_400_digits_is_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError):
        parse_size("9" * 400)
    code, _, err = pifi(capsys, "cache", "prune", "--max-size", "9" * 400, "--cache-dir", str(tmp_path / "c"))
    one_line_error(code, err, "cannot read the size")


@pytest.mark.parametrize("kind", ["fifo", "socket", "link-to-fifo"])
def test_output_that_is_not_a_regular_file_is_refused_before_anything_is_written(tmp_path, capsys, llama_dir, kind):
    import socket

    target = tmp_path / "out" / "special"
    target.parent.mkdir()
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
    else:
        os.mkfifo(target if kind == "fifo" else tmp_path / "fifo")
        if kind == "link-to-fifo":
            target.symlink_to(tmp_path / "fifo")
    before = snapshot(tmp_path / "out")
    for extra in ([], ["--no-cache"]):
        code, _, err = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "0", "-o", str(target),
                            "--cache-dir", str(tmp_path / "c"), "-q", *extra)
        one_line_error(code, err, "refusing to write the artifact over", "not a regular file")
    assert snapshot(tmp_path / "out") == before
    assert LayerCache(tmp_path / "c").keys() == []  # nothing extracted either


def test_a_folder_where_one_artifact_of_several_goes_is_refused(tmp_path, llama_dir):
    from layer_cache.fsutil import place_copy

    art = get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "c")
    (tmp_path / "o" / "x.safetensors").mkdir(parents=True)
    with pytest.raises(Exception, match="it is a folder"):
        place_copy(art.path, tmp_path / "o" / "x.safetensors")


def test_cache_artifacts_are_read_only_and_o_is_a_real_copy(tmp_path, capsys, llama_dir):
    out = tmp_path / "mine.safetensors"
    code, _, _ = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "0", "-o", str(out), "--cache-dir", str(tmp_path / "c"), "-q")
    assert code == 0
    (art,) = LayerCache(tmp_path / "c").entries()
    assert art.path.stat().st_mode & 0o777 == 0o444
    assert out.stat().st_ino != art.path.stat().st_ino and out.stat().st_nlink == 1
    assert out.read_bytes() == art.path.read_bytes()
    with open(out, "r+b") as fh:  # editing the copy in place leaves the cache intact
        fh.seek(-4, os.SEEK_END)
        fh.write(b"\0\0\0\0")
    assert LayerCache(tmp_path / "c").get(art.key).hit
    from layer_cache import verify

    assert [r.ok for r in verify(cache_dir=tmp_path / "c")] == [True]


def test_verify_corrupt_invalidates_the_memo_so_use_is_refused(tmp_path, llama_dir, capsys):
    from layer_cache import verify
    from pifi_extract.errors import ArtifactError

    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    st = art.path.stat()
    os.chmod(art.path, 0o644)
    with open(art.path, "r+b") as fh:  # a bit flip that keeps size and mtime: the memo alone would trust it
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 1]))
    os.utime(art.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert LayerCache(cache).get(art.key).hit  # (what the memo is for: no re-hash on every use)
    assert [r.ok for r in verify(cache_dir=cache)] == [False]
    with pytest.raises(ArtifactError, match="is corrupt"):
        LayerCache(cache).get(art.key)
    code, _, err = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "0", "-o", str(tmp_path / "x.safetensors"),
                        "--cache-dir", str(cache), "-q")
    one_line_error(code, err, "is corrupt")
    assert not (tmp_path / "x.safetensors").exists()


def test_verify_against_source_catches_an_artifact_claiming_another_source(tmp_path, llama_dir, capsys):
    from layer_cache import integrity
    from layer_cache.source_check import verify_against_source

    cache = tmp_path / "c"
    real = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    assert verify_against_source(real.key, cache_dir=cache).ok
    other = make_tiny_model("llama", tmp_path / "other", num_layers=2, seed=7)
    impostor = get_or_extract(str(other), 0, cache_dir=tmp_path / "c2")
    os.chmod(real.path, 0o644)  # as a crafted pull would: other weights under this key, hash self-consistent
    real.path.write_bytes(impostor.path.read_bytes())
    integrity.write_memo(__import__("pifi_extract").read_artifact(real.path))
    result = verify_against_source(real.key, cache_dir=cache)
    assert not result.ok and "differs from layer 0 of its source" in result.error
    code, out, err = pifi(capsys, "cache", "verify", "--against-source", "--cache-dir", str(cache))
    assert code == 1 and "CORRUPT" in out


def test_a_cache_hit_is_parsed_once_and_hashed_never_per_describe(tmp_path, llama_dir, monkeypatch):
    import pifi_extract.artifact as artifact_mod
    from layer_cache import integrity
    from pifi_train.layer_ref import describe_artifact

    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    monkeypatch.setenv("PIFI_CACHE", str(cache))
    hashes, parses = [], []
    real_hash, real_read = artifact_mod.data_sha256, artifact_mod.read_artifact
    for module in (artifact_mod, integrity):
        monkeypatch.setattr(module, "data_sha256", lambda *a: hashes.append(a) or real_hash(*a))
    monkeypatch.setattr(integrity, "read_artifact", lambda p: parses.append(p) or real_read(p))
    identity = describe_artifact(art.reference)  # a cache key, memo valid: trusted, not re-hashed
    assert identity.sha256 == art.data_sha256 and hashes == [] and len(parses) == 1
    outside = tmp_path / "copy.safetensors"
    outside.write_bytes(art.path.read_bytes())
    describe_artifact(str(outside))  # a file outside the cache: hashed exactly once
    assert len(hashes) == 1


@pytest.mark.parametrize("layer", ["abc", -1, True, 10**30])
def test_a_pulled_provenance_with_a_bad_layer_index_is_refused(tmp_path, llama_dir, layer):
    from dataclasses import replace

    from layer_cache import key_of
    from pifi_extract import read_artifact
    from pifi_extract.errors import ArtifactError

    info = read_artifact(get_or_extract(str(llama_dir), 0, cache_dir=tmp_path / "c").path)
    with pytest.raises(ArtifactError, match="invalid layer_index"):
        key_of(replace(info, provenance={**info.provenance, "layer_index": layer}))


def test_temp_files_of_writers_are_listed_and_count_against_max_size(tmp_path, llama_dir, capsys):
    from pifi_extract.writer import temp_name_for

    cache = tmp_path / "c"
    art = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    tmp = temp_name_for(art.path.with_name("layer-1.safetensors"))  # our own pid: a live writer
    tmp.write_bytes(b"\0" * (4 << 20))
    code, out, _ = pifi(capsys, "cache", "ls", "--cache-dir", str(cache))
    assert code == 0 and "1 temp files" in out
    result = prune(max_size="5MB", cache_dir=cache)  # 4.2 MB temp file + 0.15 MB artifact fit in 5 MB
    assert result.removed == [] and tmp.exists()
    result = prune(max_size="4.1MB", cache_dir=cache)
    assert [e.key for e in result.removed] == [art.key] and tmp.exists()  # a live writer's file stays
