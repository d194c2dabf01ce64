"""A Hub model repo, pinned to one commit, read by HTTP range requests.

All requests go through huggingface_hub's own session (one connection pool for
every file and redirect), header helpers and endpoint, so ``HF_ENDPOINT``,
``HF_TOKEN`` / the saved login token and ``HF_HUB_OFFLINE`` behave exactly as in
huggingface_hub. A range read checks every response (206, exact
``Content-Range`` and length, one ETag per file throughout) and resumes a
dropped body from the byte where it stopped, with bounded retries.

Round trips: the commit is resolved by one model-info request (sizes and hashes
of every file: no HEAD requests), while the small files the caller names
(``prefetch``: config and index) are fetched at the same time; each is kept only
if the Hub says it came from that same commit, at the size the info lists.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from .errors import NetworkError, SourceNotFoundError
from .hub_api import fetch_small, hub_errors, in_background, model_info, read_timeout, resolve_url

__all__ = ["HubSource", "hub_errors", "read_timeout", "retry_delay", "default_backoff", "MAX_BACKOFF"]

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
STALE_REDIRECT_STATUSES = {401, 403, 404, 410}
MAX_BACKOFF = 8.0  # seconds: the doubling stops here


def default_backoff() -> float:
    """Base seconds between retries (``PIFI_HTTP_BACKOFF``; doubled each try, capped at ``MAX_BACKOFF``)."""
    return float(os.environ.get("PIFI_HTTP_BACKOFF", "0.5"))


def retry_delay(base: float, failures: int) -> float:
    """Seconds to wait before retry number ``failures`` (1, 2, ...): doubling from ``base``, capped."""
    return min(MAX_BACKOFF, base * 2 ** (failures - 1))


class HubSource:
    """Files of ``repo_id`` at the commit that ``revision`` resolves to (one metadata request).

    ``prefetch``: small files fetched while the commit is being resolved (see the module docstring).
    """

    kind = "hub"

    def __init__(
        self,
        repo_id: str,
        revision: str | None = None,
        *,
        token: str | bool | None = None,
        max_retries: int = 4,
        backoff: float | None = None,
        prefetch: Sequence[str] = (),
    ) -> None:
        self.name = repo_id
        self.revision = revision
        self.token = token
        self.max_retries = max_retries
        self.backoff = default_backoff() if backoff is None else backoff
        ahead = {path: in_background(fetch_small, repo_id, revision or constants.DEFAULT_REVISION, path, token)
                 for path in dict.fromkeys(prefetch)}
        info = model_info(repo_id, revision, token)
        self.commit: str = info["sha"]
        siblings = [s for s in info.get("siblings") or [] if isinstance(s, dict) and isinstance(s.get("rfilename"), str)]
        self._files = sorted(s["rfilename"] for s in siblings)
        card = info.get("cardData") or {}
        license_ = card.get("license") if isinstance(card, dict) else None
        self.license: str | None = license_ if isinstance(license_, str) else None
        gated = info.get("gated")
        self.gated: str | bool | None = gated if isinstance(gated, (str, bool)) else None  # "auto", "manual", False
        # size and ETag (LFS sha256, else the git blob id) of every file, from that one request: no HEADs needed
        self._meta: dict[str, tuple[int, str | None]] = {
            s["rfilename"]: (s["size"], (s.get("lfs") or {}).get("sha256") or s.get("blobId"))
            for s in siblings
            if isinstance(s.get("size"), int) and not isinstance(s.get("size"), bool) and s["size"] >= 0
        }
        self._ahead = ahead  # path -> Future of fetch_small, until first read
        self._small: dict[str, bytes] = {}  # prefetched files that proved to be this commit's
        self._etags_seen: dict[str, str] = {}
        self._redirects: dict[str, str] = {}  # path -> the storage URL the Hub redirected its range reads to
        self._lock = threading.Lock()

    # -- metadata -------------------------------------------------------------------------------
    def files(self) -> list[str]:
        return list(self._files)

    def _url(self, path: str) -> str:
        return resolve_url(self.name, self.commit, path)

    def _metadata(self, path: str) -> tuple[int, str | None]:
        if path not in self._meta:
            if path not in self._files:
                raise SourceNotFoundError(f"file {self.name}/{path!r} not found at commit {self.commit[:12]}")
            self._meta[path] = self._probe(path)  # the model info gave no size: one ranged GET tells it
        return self._meta[path]

    def _probe(self, path: str) -> tuple[int, str | None]:
        """(size, ETag) of ``path`` from a ranged GET of its first byte (the total in ``Content-Range``)."""
        headers = {**build_hf_headers(token=self.token), "Range": "bytes=0-0", "Accept-Encoding": "identity"}
        with hub_errors(self.name, self.revision, path):
            resp = get_session().get(self._url(path), headers=headers, timeout=read_timeout())
            hf_raise_for_status(resp)
        total = resp.headers.get("Content-Range", "").rpartition("/")[2]
        if resp.status_code != 206 or not total.isdigit():
            raise NetworkError(f"the Hub did not report the size of {self.name}/{path}", "try again later")
        hub = resp.history[0] if resp.history else resp  # the Hub's own answer names the LFS hash, storage does not
        etag = hub.headers.get("X-Linked-Etag") or hub.headers.get("ETag")
        return int(total), etag.removeprefix("W/").strip('"') if etag else None

    def size(self, path: str) -> int:
        return self._metadata(path)[0]

    def etag(self, path: str) -> str | None:
        return self._metadata(path)[1]

    def _prefetched(self, path: str) -> bytes | None:
        """The prefetched bytes of ``path`` if they are this commit's, else None (read them the ordinary way)."""
        with self._lock:
            future = self._ahead.pop(path, None)
        if future is not None:
            got = future.result()
            if got is not None and got[0] == self.commit and len(got[1]) == self._meta.get(path, (-1,))[0]:
                with self._lock:
                    self._small[path] = got[1]
        return self._small.get(path)

    # -- data -----------------------------------------------------------------------------------
    def read(self, path: str, start: int, end: int, *, progress: Callable[[int], None] | None = None) -> bytes:
        """Bytes ``[start, end)`` of ``path``, resuming dropped bodies; raises NetworkError past the retry budget."""
        buf = bytearray(end - start)

        def sink(offset: int, data: bytes) -> None:
            buf[offset : offset + len(data)] = data

        self.read_into(path, start, end, sink, progress=progress)
        return buf  # type: ignore[return-value]  # bytes-like; no copy

    def read_into(
        self,
        path: str,
        start: int,
        end: int,
        sink: Callable[[int, bytes], None],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Stream bytes ``[start, end)`` to ``sink(offset - start, piece)`` as they arrive (memory: one piece).

        A dropped body resumes from the first byte not yet delivered. As huggingface_hub's ``http_get``, an
        attempt that moved bytes resets the count: only ``max_retries + 1`` failures in a row *without progress*
        give up, so a flaky link that keeps cutting bodies still finishes; such a resume does not wait (only
        attempts that moved nothing back off).
        """
        small = self._prefetched(path) if self._ahead or self._small else None
        if small is not None and end <= len(small):
            if end > start:
                sink(0, small[start:end])
                if progress is not None:
                    progress(end - start)
            return
        pos, failures = start, 0
        while pos < end:
            try:
                pos = self._read_once(path, sink, start, pos, end, progress)
            except _Retryable as err:
                moved = err.pos is not None and err.pos > pos
                pos = err.pos if err.pos is not None else pos
                failures = 1 if moved else failures + 1
                if failures > self.max_retries:
                    raise NetworkError(
                        f"reading {self.name}/{path} failed {failures} times in a row without progress ({err})",
                        "the network keeps dropping; try again later (completed work is not kept)",
                    ) from None
                if self.backoff and not moved:  # a body cut after progress resumes at once: the server answers
                    time.sleep(retry_delay(self.backoff, failures))

    def _read_once(
        self,
        path: str,
        sink: Callable[[int, bytes], None],
        start: int,
        pos: int,
        end: int,
        progress: Callable[[int], None] | None,
    ) -> int:
        target = self._redirects.get(path)  # a file's storage URL once a redirect named it: one request, not two
        # the token goes only to the Hub itself, as httpx drops it on a redirect to another origin
        same_origin = target is None or urlsplit(target)[:2] == urlsplit(constants.ENDPOINT)[:2]
        headers = build_hf_headers(token=self.token) if same_origin else {}
        headers["Range"] = f"bytes={pos}-{end - 1}"
        headers["Accept-Encoding"] = "identity"
        try:
            with get_session().stream("GET", target or self._url(path), headers=headers, timeout=read_timeout()) as resp:
                if target is not None and resp.status_code in STALE_REDIRECT_STATUSES:
                    resp.read()  # a signed storage URL expired: ask the Hub again
                    with self._lock:
                        self._redirects.pop(path, None)
                    raise _Retryable(f"storage URL answered HTTP {resp.status_code}")
                if resp.status_code in RETRY_STATUSES:
                    raise _Retryable(f"HTTP {resp.status_code}")
                if target is None and resp.history and resp.status_code == 206:
                    with self._lock:
                        self._redirects.setdefault(path, str(resp.url))
                if resp.status_code != 206:
                    resp.read()
                    with hub_errors(self.name, self.revision, path):
                        hf_raise_for_status(resp)
                    raise NetworkError(
                        f"the server answered HTTP {resp.status_code} to a range request for {self.name}/{path}",
                        "the endpoint must support HTTP Range requests",
                    )
                self._check_response(path, resp, pos, end)
                for chunk in resp.iter_raw():
                    n = min(len(chunk), end - pos)
                    if n:
                        sink(pos - start, chunk[:n])
                        pos += n
                        if progress is not None:
                            progress(n)
        except httpx2.TimeoutException:
            raise _Retryable(f"no data for {read_timeout():g} s, HF_HUB_DOWNLOAD_TIMEOUT", pos) from None
        except (httpx2.NetworkError, httpx2.RemoteProtocolError) as err:
            raise _Retryable(str(err) or type(err).__name__, pos) from None
        except (httpx2.TransportError, OfflineModeIsEnabled):
            with hub_errors(self.name, self.revision, path):
                raise
        if pos < end:
            raise _Retryable(f"body ended after {pos - start} of {end - start} bytes", pos)
        return pos

    def _check_response(self, path: str, resp: Any, pos: int, end: int) -> None:
        size = self.size(path)
        expected = f"bytes {pos}-{end - 1}/{size}"
        got_range = resp.headers.get("Content-Range", "")
        got_len = resp.headers.get("Content-Length")
        if got_range != expected or (got_len is not None and (not got_len.isdigit() or int(got_len) != end - pos)):
            raise NetworkError(
                f"bad range response for {self.name}/{path}: Content-Range {got_range!r}, length {got_len} "
                f"(expected {expected!r})",
            )
        etag = resp.headers.get("ETag")
        if etag is None:
            return
        with self._lock:
            first = self._etags_seen.setdefault(path, etag)
        if etag != first:
            raise NetworkError(
                f"{self.name}/{path} changed while it was being read (ETag {first} -> {etag})",
                "run the extraction again; pin --revision to a commit sha",
            )


class _Retryable(Exception):
    """A transient failure (dropped body, 5xx, timeout): the read resumes from ``pos``, where it stopped."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.pos = pos
