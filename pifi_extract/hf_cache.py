"""Files of Hub repos already in the local Hugging Face cache (what ``HF_HUB_OFFLINE=1`` can still read)."""

from __future__ import annotations

from pathlib import Path

from .errors import OfflineError


def cached_file(repo_id: str, file: str, revision: str | None, *, hint: str) -> tuple[Path, str]:
    """``file`` of the repo in the local Hugging Face cache: its path in the snapshot, and the snapshot's commit.

    ``hint`` is the fix the :class:`OfflineError` names when the file was never downloaded.
    """
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, file, revision=revision)
    if not isinstance(found, str):
        shown = repo_id if file == "config.json" else f"{repo_id}/{file}"
        raise OfflineError(
            f"HF_HUB_OFFLINE=1 and {shown} is neither in the pifi cache nor in the Hugging Face cache", hint
        )
    snapshot = Path(found).parents[len(Path(file).parts) - 1]  # .../snapshots/<commit>
    return Path(found), snapshot.name
