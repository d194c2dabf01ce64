"""A Hub model repo, pinned to one commit, read by HTTP range requests.

All requests go through huggingface_hub's own session, URL and header helpers,
so ``HF_ENDPOINT``, ``HF_TOKEN`` / the saved login token and ``HF_HUB_OFFLINE``
behave exactly as in huggingface_hub. A range read checks every response
(206, exact ``Content-Range`` and length, one ETag per file throughout) and
resumes a dropped body from the byte where it stopped, with bounded retries.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, Callable, Iterator

from urllib.parse import quote, urlsplit

import httpx2
from huggingface_hub import constants, get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from .errors import AccessDeniedError, NetworkError, OfflineError, PifiError, SourceNotFoundError

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
STALE_REDIRECT_STATUSES = {401, 403, 404, 410}
MAX_BACKOFF = 8.0  # seconds: the doubling stops here


def default_backoff() -> float:
    """Base seconds between retries (``PIFI_HTTP_BACKOFF``; doubled each try, capped at ``MAX_BACKOFF``)."""
    return float(os.environ.get("PIFI_HTTP_BACKOFF", "0.5"))


def read_timeout() -> float:
    """Seconds a Hub request may go without a byte: huggingface_hub's ``HF_HUB_DOWNLOAD_TIMEOUT`` (default 10)."""
    return float(constants.HF_HUB_DOWNLOAD_TIMEOUT)


def retry_delay(base: float, failures: int) -> float:
    """Seconds to wait before retry number ``failures`` (1, 2, ...): doubling from ``base``, capped."""
    return min(MAX_BACKOFF, base * 2 ** (failures - 1))


WRITE_HINT = "log in with a token that has write access (`hf auth login`), or pass --token / set HF_TOKEN"
OFFLINE_HINT = "unset HF_HUB_OFFLINE (or connect once) to reach the Hub; what was fetched before works offline"


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None = None, path: str | None = None, *, push: bool = False
               ) -> Iterator[None]:
    """Turn huggingface_hub's and the network's exceptions into pifi's one-line errors: the one mapping of every
    command that talks to the Hub (reads, and with ``push`` uploads to ``repo_id``)."""
    what = f"{repo_id}/{path}" if path else repo_id
    try:
        yield
    except LocalTokenNotFoundError:
        raise AccessDeniedError(f"pushing to {repo_id} needs a Hub token with write access", WRITE_HINT) from None
    except GatedRepoError:
        raise AccessDeniedError(
            f"{repo_id} is gated and this token has no access",
            "request access on its Hub page, then log in with `hf auth login` or pass --token / set HF_TOKEN",
        ) from None
    except RepositoryNotFoundError:
        raise SourceNotFoundError(
            f"repository {repo_id!r} not found, or private and this token cannot see it",
            "check the repo id; for a private repo log in with `hf auth login` or pass --token",
        ) from None
    except RevisionNotFoundError:
        raise SourceNotFoundError(
            f"revision {revision!r} not found in {repo_id}", "pass an existing branch, tag or commit sha to --revision"
        ) from None
    except (OfflineModeIsEnabled, LocalEntryNotFoundError):  # offline, or the Hub unreachable and nothing cached
        raise _unreachable(what, "pushing to" if push else "reading") from None
    except EntryNotFoundError:
        raise SourceNotFoundError(f"file {what!r} not found at revision {revision or 'main'}") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            if push:
                raise AccessDeniedError(f"no write access to {repo_id} (HTTP {status})", WRITE_HINT) from None
            raise AccessDeniedError(
                f"access to {what} denied (HTTP {status})", "log in with `hf auth login` or pass --token / set HF_TOKEN"
            ) from None
        raise NetworkError(f"the Hub answered HTTP {status} for {what}", "try again later") from None
    except httpx2.TransportError as err:
        raise _unreachable(what, "pushing to" if push else "reading", err) from None


def _unreachable(what: str, doing: str, err: BaseException | None = None) -> PifiError:
    """HF_HUB_OFFLINE=1 (OfflineError), or the Hub does not answer (NetworkError); never "not found"."""
    if constants.is_offline_mode():
        cached = "" if doing.startswith("push") else ", and it is not in the local cache"
        return OfflineError(f"HF_HUB_OFFLINE=1: {doing} {what} needs the Hub{cached}", OFFLINE_HINT)
    detail = f": {err}" if err is not None and str(err) else ""
    return NetworkError(f"cannot reach the Hub ({constants.ENDPOINT}) while {doing} {what}{detail}",
                        "check the network, a proxy, or HF_ENDPOINT; what was fetched before works offline "
                        "(HF_HUB_OFFLINE=1)")


def model_info(repo_id: str, revision: str | None, token: str | bool | None) -> dict[str, Any]:
    """The Hub's model info with file sizes and hashes (``HfApi.model_info(files_metadata=True)``'s request:
    the same URL, headers, session and error mapping, without importing ``HfApi``, which costs ~0.5 s)."""
    url = f"{constants.ENDPOINT}/api/models/{repo_id}"
    if revision is not None:
        url += f"/revision/{quote(revision, safe='')}"
    with hub_errors(repo_id, revision):
        resp = get_session().get(url, headers=build_hf_headers(token=token), params={"blobs": True},
                                 timeout=read_timeout())
        hf_raise_for_status(resp)
    try:
        info = resp.json()
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("sha"), str):
        raise NetworkError(f"the Hub sent an unexpected model info for {repo_id}", "try again later")
    return info


class HubSource:
    """Files of ``repo_id`` at the commit that ``revision`` resolves to (one metadata request)."""

    kind = "hub"

    def __init__(
        self,
        repo_id: str,
        revision: str | None = None,
        *,
        token: str | bool | None = None,
        max_retries: int = 4,
        backoff: float | None = None,
    ) -> None:
        self.name = repo_id
        self.revision = revision
        self.token = token
        self.max_retries = max_retries
        self.backoff = default_backoff() if backoff is None else backoff
        info = model_info(repo_id, revision, token)
        self.commit: str = info["sha"]
        siblings = [s for s in info.get("siblings") or [] if isinstance(s, dict) and "rfilename" in s]
        self._files = sorted(s["rfilename"] for s in siblings)
        card = info.get("cardData") or {}
        self.license: str | None = card.get("license") if isinstance(card, dict) else None
        # size and ETag (LFS sha256, else the git blob id) of every file, from that one request: no HEADs needed
        self._meta: dict[str, tuple[int, str | None]] = {
            s["rfilename"]: (s["size"], (s.get("lfs") or {}).get("sha256") or s.get("blobId"))
            for s in siblings
            if isinstance(s.get("size"), int)
        }
        self._etags_seen: dict[str, str] = {}
        self._redirects: dict[str, str] = {}  # path -> the storage URL the Hub redirected its range reads to
        self._lock = threading.Lock()

    # -- metadata -------------------------------------------------------------------------------
    def files(self) -> list[str]:
        return list(self._files)

    def _url(self, path: str) -> str:
        return hf_hub_url(self.name, path, revision=self.commit, endpoint=constants.ENDPOINT)

    def _metadata(self, path: str) -> tuple[int, str | None]:
        if path not in self._meta:
            with hub_errors(self.name, self.revision, path):
                meta = get_hf_file_metadata(self._url(path), token=self.token, retry_on_errors=True)
            if meta.size is None:
                raise NetworkError(f"the Hub did not report the size of {self.name}/{path}", "try again later")
            self._meta[path] = (meta.size, meta.etag)
        return self._meta[path]

    def size(self, path: str) -> int:
        return self._metadata(path)[0]

    def etag(self, path: str) -> str | None:
        return self._metadata(path)[1]

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
        if got_range != expected or (got_len is not None and int(got_len) != end - pos):
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
