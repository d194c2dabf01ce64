"""Helpers of the layer-cache tests: worker functions for spawned processes (importable by name) and fixtures' code."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable


def extract_worker(llm: str, layer: int, cache_dir: str, queue: Any) -> None:
    """Child process: get_or_extract one layer, report ("waiting", pid) if it had to wait, then ("done", ...)."""
    try:
        from layer_cache import get_or_extract

        art = get_or_extract(llm, layer, cache_dir=cache_dir, on_wait=lambda: queue.put(("waiting", os.getpid())))
        queue.put(("done", os.getpid(), art.hit, str(art.path)))
    except BaseException as err:  # report, so the parent fails with the reason instead of a timeout
        queue.put(("error", os.getpid(), repr(err)))


def extract_and_hang(llm: str, layer: int, cache_dir: str, ready: str) -> None:
    """Child process: start extracting, signal ``ready`` once tensor bytes flow, then hang until killed."""
    from layer_cache import get_or_extract

    def progress(advance: int, total: int) -> None:
        Path(ready).write_text(str(os.getpid()))
        threading.Event().wait()  # stuck mid-extraction: the parent SIGKILLs us here

    get_or_extract(llm, layer, cache_dir=cache_dir, progress=progress)


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy (returned) or ``timeout`` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` (relative, sorted), hidden ones and locks included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def artifact_files(root: Path) -> list[str]:
    """What a reader could take for an artifact: visible ``*.safetensors`` files below ``root``."""
    return [f for f in files_under(root) if f.endswith(".safetensors") and not Path(f).name.startswith(".")]
