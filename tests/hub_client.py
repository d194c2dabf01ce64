"""Point the real huggingface_hub client at a loopback Hub for one test (env vars and import-time constants)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def point_hf_hub_at(server: Any, monkeypatch: Any, hf_home: str | Path) -> None:
    """Point huggingface_hub at `server` for one test: env vars and the constants read at import time.

    Caches and token files go under `hf_home`; HF_TOKEN is cleared; telemetry, Xet and offline mode are off.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_assets, _cache_manager

    home = Path(hf_home)
    hub_cache, assets, xet, token_path = home / "hub", home / "assets", home / "xet", home / "token"
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HUGGINGFACE_CO_STAGING", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(assets),
        "HF_XET_CACHE": str(xet),
        "HF_TOKEN_PATH": str(token_path),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    patches: dict[str, Any] = {
        "ENDPOINT": server.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(assets),
        "HUGGINGFACE_ASSETS_CACHE": str(assets),
        "HF_XET_CACHE": str(xet),
        "HF_TOKEN_PATH": str(token_path),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_XET": True,
    }
    for k, v in patches.items():
        monkeypatch.setattr(constants, k, v)
    monkeypatch.setattr(hf_api.api, "endpoint", server.url)  # module-level HfApi() behind huggingface_hub.model_info
    monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(_cache_assets, "HF_ASSETS_CACHE", str(assets))
