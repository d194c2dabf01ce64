"""`pifi extract` through the cache and `pifi cache ...`: output, exit codes, and the bad-input list of the issue.

Each bad input gives ONE line on stderr, exit code 2, and leaves the cache as it was.
"""

from __future__ import annotations

import errno
import json
import os


from cache_helpers import artifact_files, files_under
from layer_cache import LayerCache, get_or_extract
from pifi_extract import read_artifact
from pifi_extract.writer import TMP_MARKER
from cli_runner import run_cli


pifi = run_cli


def one_line_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_extract_stores_in_cache_then_hits_and_places_output(tmp_path, capsys, llama_dir):
    cache = tmp_path / "cache"
    code, out, _ = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "-1", "--cache-dir", str(cache), "-q")
    assert code == 0 and "stored in the cache" in out and "llama layer 3 of 4" in out
    (rel,) = artifact_files(cache)
    assert str(cache / rel) in out and rel.endswith("layer-3.safetensors")
    dest = tmp_path / "out" / "last.safetensors"
    code, out, _ = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "3", "--cache-dir", str(cache), "-o", str(dest))
    assert code == 0 and "from the cache" in out and str(dest) in out
    assert read_artifact(dest).data_sha256 == read_artifact(cache / rel).data_sha256
    assert artifact_files(cache) == [rel]
    code, out, _ = pifi(capsys, "inspect", f"{llama_dir}:-1", "--json", "--cache-dir", str(cache))
    assert code == 0 and json.loads(out)["provenance"]["layer_index"] == 3


def test_ls_verify_rm_prune_commands(tmp_path, capsys, llama_dir, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("PIFI_CACHE", str(cache))  # the env var alone picks the cache
    a = get_or_extract(str(llama_dir), -1)
    b = get_or_extract(str(llama_dir), 0, dtype="bf16")
    code, out, _ = pifi(capsys, "cache", "ls", "--json")
    data = json.loads(out)
    assert code == 0 and data["root"] == str(cache) and data["total_bytes"] == a.size + b.size
    assert sorted(x["reference"] for x in data["artifacts"]) == sorted([a.reference, b.reference])
    code, out, _ = pifi(capsys, "cache", "ls")
    assert code == 0 and "2 artifacts" in out and "bf16" in out
    code, out, _ = pifi(capsys, "cache", "verify")
    assert code == 0 and out.count("OK") == 2
    with open(b.path, "r+b") as fh:  # flip one data byte
        fh.seek(-2, os.SEEK_END)
        byte = fh.read(1)
        fh.seek(-2, os.SEEK_END)
        fh.write(bytes([byte[0] ^ 1]))
    code, out, err = pifi(capsys, "cache", "verify")
    assert code == 1 and "CORRUPT" in out and f"OK  {a.reference}" in out and "1 of 2 artifacts are corrupt" in err
    code, _, err = pifi(capsys, "inspect", b.reference)  # refused on use, with the fix
    one_line_error(code, err, "corrupt", f"pifi cache rm {b.reference}")
    code, out, _ = pifi(capsys, "cache", "rm", b.reference)
    assert code == 0 and f"removed {b.reference}" in out
    assert [k.display() for k in LayerCache(cache).keys()] == [a.reference]
    code, out, _ = pifi(capsys, "cache", "prune", "--max-size", "1KB", "--dry-run")
    assert code == 0 and "would remove 1 artifacts" in out and a.path.exists()
    code, out, _ = pifi(capsys, "cache", "prune", "--max-size", "1KB")
    assert code == 0 and "removed 1 artifacts" in out and LayerCache(cache).keys() == []


# ---- bad input: one line, exit 2, nothing lost ------------------------------------------------------
def test_unknown_key(tmp_path, capsys, llama_dir):
    art = get_or_extract(str(llama_dir), -1, cache_dir=tmp_path / "c")
    code, _, err = pifi(capsys, "cache", "rm", "org/unknown:-1", art.reference, "--cache-dir", str(tmp_path / "c"))
    one_line_error(code, err, "unknown artifact reference 'org/unknown:-1'", art.reference, "pifi cache ls")
    assert art.path.exists()  # nothing removed: every reference is checked first
    code, _, err = pifi(capsys, "cache", "verify", "org/unknown:-1", "--cache-dir", str(tmp_path / "c"))
    one_line_error(code, err, "unknown artifact reference")


def test_ambiguous_reference(tmp_path, capsys, llama_dir):
    cache = tmp_path / "c"
    keep = get_or_extract(str(llama_dir), -1, cache_dir=cache)
    bf16 = get_or_extract(str(llama_dir), -1, dtype="bf16", cache_dir=cache)
    code, _, err = pifi(capsys, "cache", "rm", f"{llama_dir}:-1", "--cache-dir", str(cache))
    one_line_error(code, err, "ambiguous", keep.reference, bf16.reference)
    assert keep.path.exists() and bf16.path.exists()


def test_cache_dir_not_writable(tmp_path, capsys, llama_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "-1", "--cache-dir", str(blocker / "cache"))
    one_line_error(code, err, "not writable", "PIFI_CACHE")
    assert blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root writes anywhere: only the chmod case needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, err = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "-1", "--cache-dir", str(locked))
        one_line_error(code, err, "not writable")
        assert list(locked.iterdir()) == []


def test_disk_full_during_extract_removes_temp_and_keeps_cache(tmp_path, capsys, llama_dir, monkeypatch):
    cache = tmp_path / "c"
    kept = get_or_extract(str(llama_dir), 0, cache_dir=cache)
    before = files_under(cache)
    real_pwrite, calls = os.pwrite, []

    def full_disk(fd, data, offset):  # the header fits, then the disk is full
        calls.append(offset)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    code, _, err = pifi(capsys, "extract", "--llm", str(llama_dir), "--layer", "-1", "--cache-dir", str(cache), "-q")
    monkeypatch.undo()
    one_line_error(code, err, "disk full")
    assert len(calls) > 1
    assert [f for f in files_under(cache) if TMP_MARKER in f] == []  # temp file removed
    assert [f for f in files_under(cache) if not f.startswith(".locks")] == [
        f for f in before if not f.startswith(".locks")
    ]
    assert LayerCache(cache).get(kept.key).hit  # what was there is intact


def test_push_without_write_token(tmp_path, capsys, llama_dir, hub_server):
    art = get_or_extract(str(llama_dir), -1, cache_dir=tmp_path / "c")
    code, _, err = pifi(capsys, "cache", "push", art.reference, "--to", "lab/layers", "--cache-dir", str(tmp_path / "c"))
    one_line_error(code, err, "write access to lab/layers", "hf auth login")
    assert "lab/layers" not in hub_server.repos and art.path.exists()


def test_pull_of_a_non_artifact_is_refused(tmp_path, capsys, hub_server):
    hub_server.add_repo("org/stuff", {"model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", "a.txt": b"x"})
    code, _, err = pifi(capsys, "cache", "pull", "org/stuff", "--cache-dir", str(tmp_path / "c"), "-q")
    one_line_error(code, err, "org/stuff/model.safetensors is not a pifi artifact", "refused")
    code, _, err = pifi(capsys, "cache", "pull", "org/stuff", "a.txt", "--cache-dir", str(tmp_path / "c"), "-q")
    one_line_error(code, err, "org/stuff/a.txt is not a pifi artifact")
    assert LayerCache(tmp_path / "c").keys() == []
    assert [f for f in files_under(tmp_path / "c") if not f.startswith(".locks")] == [".pifi-cache", "CACHEDIR.TAG"]


def test_push_and_pull_commands(tmp_path, capsys, llama_dir, hub_server):
    lab, member = tmp_path / "lab", tmp_path / "member"
    art = get_or_extract(str(llama_dir), -1, cache_dir=lab)
    code, out, _ = pifi(capsys, "cache", "push", art.reference, "--to", "lab/layers", "--public",
                        "--token", hub_server.write_token, "--cache-dir", str(lab))
    assert code == 0 and f"pushed hf://lab/layers/{art.key.rel_path}" in out and "use it with: pifi train" in out
    assert not hub_server.repos["lab/layers"].private
    code, out, _ = pifi(capsys, "cache", "pull", "lab/layers", "--cache-dir", str(member), "-q")
    assert code == 0 and f"pulled: {art.reference}" in out
    code, out, _ = pifi(capsys, "cache", "pull", "lab/layers", str(art.key.rel_path), "--cache-dir", str(member), "-q")
    assert code == 0 and "already cached" in out
    assert [k.display() for k in LayerCache(member).keys()] == [art.reference]
