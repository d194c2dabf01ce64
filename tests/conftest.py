"""Shared pytest fixtures (others add theirs below; keep each block small and general)."""

import pytest

from hub_server import HubServer, point_hf_hub_at

# fixture modules every test may use without importing them (tiny models, tasks and runs of each family)
pytest_plugins = ["train_fixtures", "family_fixtures"]


@pytest.fixture
def hub_server(tmp_path_factory, monkeypatch):
    """A loopback Hub (tests/hub_server.py) that huggingface_hub talks to.

    HF_ENDPOINT and the hub constants point at it; HF_HOME/HF_HUB_CACHE/token files live in a tmp dir,
    HF_TOKEN is cleared, telemetry and Xet are off. Use `server.add_repo(...)`, `server.write_token`.
    """
    monkeypatch.setenv("PIFI_HTTP_BACKOFF", "0")  # injected faults are retried at once (no sleeping in tests)
    with HubServer() as server:
        point_hf_hub_at(server, monkeypatch, tmp_path_factory.mktemp("hf_home"))
        yield server


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """A sharded tiny random llama (4 layers, tests/tiny_models.py) on disk, one per test module."""
    from tiny_models import make_tiny_model

    return make_tiny_model("llama", tmp_path_factory.mktemp("models") / "llama", num_layers=4)


@pytest.fixture(autouse=True)
def _pifi_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Every test (and every `pifi` subprocess it starts) uses its own empty pifi cache, never ~/.cache/pifi."""
    monkeypatch.setenv("PIFI_CACHE", str(tmp_path_factory.mktemp("pifi_cache")))
