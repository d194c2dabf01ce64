"""Requests to the Hub besides range reads: the model info, speculative fetches of small files, and the
mapping of huggingface_hub's exceptions to pifi's one-line errors (every request through huggingface_hub's
own session and header helpers)."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future
from typing import Any, Callable, Iterator
from urllib.parse import quote

import httpx2
from huggingface_hub import constants
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
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from .errors import AccessDeniedError, NetworkError, OfflineError, PifiError, SourceNotFoundError


WRITE_HINT = "log in with a token that has write access (`hf auth login`), or pass --token / set HF_TOKEN"
OFFLINE_HINT = "unset HF_HUB_OFFLINE (or connect once) to reach the Hub; what was fetched before works offline"


def read_timeout() -> float:
    """Seconds a Hub request may go without a byte: huggingface_hub's ``HF_HUB_DOWNLOAD_TIMEOUT`` (default 10)."""
    return float(constants.HF_HUB_DOWNLOAD_TIMEOUT)


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


def resolve_url(repo_id: str, revision: str, path: str) -> str:
    """``hf_hub_url``'s address of ``path`` at ``revision`` on the current endpoint (without importing
    huggingface_hub's download module, ~0.05 s)."""
    return f"{constants.ENDPOINT}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"


def in_background(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` on a daemon thread (it never holds up the interpreter's exit); its outcome in a Future."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(err)

    threading.Thread(target=run, name="pifi-prefetch", daemon=True).start()
    return future


MAX_PREFETCH_BYTES = 16 << 20  # a config or index is far smaller; anything larger is read the ordinary way


def fetch_small(repo_id: str, revision: str, path: str, token: str | bool | None) -> tuple[str | None, bytes] | None:
    """(the commit the Hub served it from, body) of a small file at an unpinned ``revision``; None on any
    failure: the caller then reads it at the pinned commit, the ordinary way, which reports errors."""
    headers = build_hf_headers(token=token)
    try:
        with get_session().stream("GET", resolve_url(repo_id, revision, path), headers=headers,
                                  timeout=read_timeout()) as resp:
            if resp.status_code != 200:
                return None
            commit = resp.headers.get("X-Repo-Commit")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_PREFETCH_BYTES:
                    return None
    except Exception:  # noqa: BLE001 - a speculative read: any failure means "read it the ordinary way"
        return None
    return commit, bytes(body)
