"""Concurrency and crashes: one extraction for two processes, SIGKILL mid-extract, group-writable files."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import stat
from pathlib import Path


from cache_helpers import artifact_files, extract_and_hang, extract_worker, files_under, wait_for
from layer_cache import CacheKey, LayerCache, get_or_extract
from pifi_extract import read_artifact, verify_artifact
from pifi_extract.writer import TMP_MARKER

REPO = "org/tiny-llama"


def _next(q: mp.Queue, timeout: float = 90.0):
    try:
        return q.get(timeout=timeout)
    except queue_mod.Empty:
        raise AssertionError("a worker process reported nothing in time") from None


def test_two_processes_same_key_one_extraction(tmp_path, hub_server, llama_dir, monkeypatch):
    sha = hub_server.add_repo(REPO, llama_dir)
    cache_dir = tmp_path / "cache"
    key = CacheKey(REPO, "hub", sha, 3, "keep")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    # Hold the key's lock so both workers get past their cache lookups and queue on the lock: only
    # the lock (not timing) can then prevent a double extraction.
    with LayerCache(cache_dir).locked(key):
        procs = [ctx.Process(target=extract_worker, args=(REPO, -1, str(cache_dir), q)) for _ in range(2)]
        for p in procs:
            p.start()
        msgs = [_next(q), _next(q)]
        assert all(m[0] == "waiting" for m in msgs), msgs
        hub_server.reset_counters()
    done = [_next(q), _next(q)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert all(m[0] == "done" for m in done), done
    assert sorted(m[2] for m in done) == [False, True]  # one extracted, the other found it
    paths = {m[3] for m in done}
    assert len(paths) == 1
    info = verify_artifact(paths.pop())
    data_bytes = info.size - info.data_start
    served = sum(n for k, n in hub_server.bytes_by_path.items() if k.endswith(".safetensors"))
    assert data_bytes <= served < 1.5 * data_bytes  # the layer's tensor bytes crossed the wire once
    assert artifact_files(cache_dir) == [str(key.rel_path)]


def test_sigkill_mid_extract_leaves_nothing_listed_and_no_blocking_lock(tmp_path, llama_dir):
    cache_dir = tmp_path / "cache"
    ready = tmp_path / "ready"
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=extract_and_hang, args=(str(llama_dir), -1, str(cache_dir), str(ready)))
    proc.start()
    try:
        wait_for(ready.exists, 90, "the worker to start writing")
        temps = [f for f in files_under(cache_dir) if TMP_MARKER in f]
        assert temps, "the worker should be mid-write (a temp file present)"
    finally:
        proc.kill()  # SIGKILL
        proc.join(timeout=30)
    assert proc.exitcode == -9
    cache = LayerCache(cache_dir)
    assert cache.keys() == [] and artifact_files(cache_dir) == []  # nothing that looks valid
    art = get_or_extract(str(llama_dir), -1, cache_dir=cache_dir)  # the dead holder's lock does not block
    assert not art.hit and art.key.layer_index == 3
    verify_artifact(art.path)
    assert [f for f in files_under(cache_dir) if TMP_MARKER in f] == []  # the stale temp file was swept
    assert [k.layer_index for k in cache.keys()] == [3]


def test_files_are_group_writable_when_the_umask_allows(tmp_path, llama_dir):
    old = os.umask(0o002)
    try:
        art = get_or_extract(str(llama_dir), 0, dtype="bf16", cache_dir=tmp_path / "cache")
    finally:
        os.umask(old)
    assert read_artifact(art.path).provenance["dtype"] == "BF16"
    for rel in files_under(tmp_path / "cache"):
        if rel.endswith(".safetensors") and not Path(rel).name.startswith("."):
            assert (tmp_path / "cache" / rel).stat().st_mode & 0o777 == 0o444  # artifacts: read-only for all
            continue
        mode = (tmp_path / "cache" / rel).stat().st_mode
        assert mode & stat.S_IWGRP, f"{rel} is not group-writable ({oct(mode)})"
    assert art.path.parent.stat().st_mode & stat.S_IWGRP
