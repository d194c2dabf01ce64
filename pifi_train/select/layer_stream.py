"""The layers of an LLM one after another, the next one read while the caller computes on the current one.

:class:`LayerStream` yields ``(index, FrozenLayer)`` in the order of its plans. Each layer's artifact comes from
the pifi cache when it holds it, else by the plan and range reads of ``pifi extract`` (into the cache with
``cache_layers``, else into a temporary file). With ``prefetch`` two threads work ahead of the caller: a fetcher
(network -> artifact file) and a builder (file -> FrozenLayer on the device), so the link stays busy while the
caller computes. Bounds, whatever the number of layers:

* memory: at most ``max_layers`` (2) layers alive at once — the one the caller holds and the one built ahead; a
  slot is freed when the caller drops its layer (``weakref.finalize``), not when it asks for the next one;
* disk: at most one fetched artifact waits for the builder (plus the one being fetched).

``stats`` records bytes read, cache hits, the largest number of layers alive, and the seconds spent fetching,
building, computing (the caller's time with each layer) and waiting for a layer.
"""

from __future__ import annotations

import gc
import itertools
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from pifi_extract.extract import write_artifact

_POLL_S = 0.1  # how often a blocked worker looks at the stop flag
_END = object()


@dataclass
class StreamStats:
    """What one pass read and how its time was spent (seconds are wall-clock, summed per stage)."""

    bytes_read: int = 0
    cached_layers: list[int] = field(default_factory=list)  # layers taken from the pifi cache
    peak_alive: int = 0  # the most layers alive at once (built and not yet released)
    fetch_s: float = 0.0
    build_s: float = 0.0
    compute_s: float = 0.0  # the caller's time with each layer
    wait_s: float = 0.0  # the caller's time waiting for the next layer


@dataclass
class _Failure:
    error: BaseException


class LayerStream:
    """Iterate ``(layer index, FrozenLayer)`` over ``plans`` (see the module docstring)."""

    def __init__(
        self,
        source: Any,
        plans: Sequence[Any],
        tmp_dir: str | Path,
        *,
        device: torch.device,
        dtype: torch.dtype,
        cache: Any = None,
        cache_layers: bool = False,
        prefetch: bool = True,
        max_layers: int = 2,
        on_layer: Callable[[int], None] | None = None,
    ) -> None:
        self.source, self.plans, self.tmp_dir = source, list(plans), Path(tmp_dir)
        self.device, self.dtype = device, dtype
        self.cache, self.cache_layers, self.prefetch = cache, cache_layers, prefetch
        self.on_layer = on_layer  # called with the index of each layer as its fetch starts
        self.stats = StreamStats()
        self._slots = threading.Semaphore(max(1, max_layers))
        self._lock = threading.Lock()
        self._alive = 0
        self._stop = threading.Event()
        self._names = itertools.count()

    # -- the two stages ---------------------------------------------------------------------------
    def fetch(self, plan: Any) -> tuple[int, Path, bool]:
        """(index, artifact path, whether it is a temporary file) for one plan."""
        t = time.perf_counter()
        index = plan.layer_index
        if self.on_layer is not None:
            self.on_layer(index)
        hit = self.cache.find(index) if self.cache is not None else None
        if hit is not None:
            with self._lock:
                self.stats.cached_layers.append(index)
            out = (index, Path(hit.path), False)
        elif self.cache is not None and self.cache_layers:
            out = (index, Path(self.cache.insert(plan, progress=self._tick).path), False)
        else:
            temp = self.tmp_dir / f"layer-{index}-{next(self._names)}.safetensors"
            write_artifact(self.source, plan, temp, progress=self._tick)
            out = (index, temp, True)
        with self._lock:
            self.stats.fetch_s += time.perf_counter() - t
        return out

    def build(self, path: Path, temp: bool) -> Any:
        """The FrozenLayer of an artifact file (a temporary file is removed once loaded)."""
        from ..frozen_layer import load_layer

        t = time.perf_counter()
        try:
            layer = load_layer(path, device=self.device, dtype=self.dtype, verify=False)
        finally:
            if temp:
                path.unlink(missing_ok=True)
        with self._lock:
            self._alive += 1
            self.stats.peak_alive = max(self.stats.peak_alive, self._alive)
            self.stats.build_s += time.perf_counter() - t
        weakref.finalize(layer, self._release)
        return layer

    def _release(self) -> None:
        with self._lock:
            self._alive -= 1
        self._slots.release()

    def _tick(self, n: int, *_: Any) -> None:
        with self._lock:
            self.stats.bytes_read += n

    # -- iteration --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if not self.prefetch:
            for plan in self.plans:
                index, path, temp = self.fetch(plan)
                self._take_slot()
                layer = self.build(path, temp)
                t = time.perf_counter()
                yield index, layer
                del layer
                self.stats.compute_s += time.perf_counter() - t
            return
        fetched: queue.Queue = queue.Queue(maxsize=1)
        built: queue.Queue = queue.Queue()
        workers = [threading.Thread(target=self._fetcher, args=(fetched,), daemon=True, name="pifi-fetch"),
                   threading.Thread(target=self._builder, args=(fetched, built), daemon=True, name="pifi-build")]
        for w in workers:
            w.start()
        try:
            for _ in self.plans:
                t = time.perf_counter()
                item = built.get()
                self.stats.wait_s += time.perf_counter() - t
                if isinstance(item, _Failure):
                    raise item.error
                index, layer = item
                del item
                t = time.perf_counter()
                yield index, layer
                del layer
                self.stats.compute_s += time.perf_counter() - t
        finally:
            self._stop.set()
            for w in workers:
                w.join()
            while not built.empty():  # a layer built ahead and never taken frees its slot here
                built.get_nowait()

    def _take_slot(self) -> bool:
        """Wait for a free memory slot; False when the stream stops first."""
        waited = 0.0
        while not self._slots.acquire(timeout=_POLL_S):
            if self._stop.is_set():
                return False
            waited += _POLL_S
            if waited >= 2.0:  # a layer kept alive only by a reference cycle: collect it
                gc.collect()
                waited = 0.0
        return True

    def _put(self, q: queue.Queue, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                pass
        return False

    def _fetcher(self, fetched: queue.Queue) -> None:
        try:
            for plan in self.plans:
                if self._stop.is_set() or not self._put(fetched, self.fetch(plan)):
                    return
            self._put(fetched, _END)
        except BaseException as err:  # handed to the caller's thread
            self._put(fetched, _Failure(err))

    def _builder(self, fetched: queue.Queue, built: queue.Queue) -> None:
        while not self._stop.is_set():
            try:
                item = fetched.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                built.put(item)
                return
            index, path, temp = item
            if not self._take_slot():
                if temp:
                    path.unlink(missing_ok=True)
                return
            try:
                layer = self.build(path, temp)
            except BaseException as err:
                self._slots.release()
                built.put(_Failure(err))
                return
            built.put((index, layer))
            del layer


    # -- random access (the pairs search) ----------------------------------------------------------
    def fetch_all(self) -> dict[int, Path]:
        """Every plan's artifact on disk, nothing built: index -> path (temporary files stay until ``tmp_dir``
        is removed)."""
        return {index: path for index, path, _ in map(self.fetch, self.plans)}

    def load(self, path: Path) -> Any:
        """The FrozenLayer of an artifact file, within the same memory bound as the iteration."""
        self._take_slot()
        try:
            return self.build(path, False)
        except BaseException:
            self._slots.release()
            raise
