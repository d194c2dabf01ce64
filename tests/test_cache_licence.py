"""Licence-aware `pifi cache push` on the loopback Hub: a gated, Llama-licensed source's layer keeps its
gating (update_repo_settings recorded), its LICENSE/USE_POLICY files and a card stating the licence;
--public is refused unless --i-know-the-license."""

from __future__ import annotations

import pytest

import cli
from layer_cache import get_or_extract, push
from pifi_extract.errors import AccessDeniedError
from tiny_models import make_tiny_model
from train_fixtures import assets  # noqa: F401 - fixture

SOURCE = "meta/llama-tiny"
GATED_TOKEN = "hf_gated_reader"
LICENSE = b"LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\n"
POLICY = b"# Llama 3.1 Acceptable Use Policy\n"


@pytest.fixture
def gated_layer(hub_server, tmp_path, monkeypatch):
    folder = make_tiny_model("llama", tmp_path / "llama", num_layers=2)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    files.update({"LICENSE": LICENSE, "USE_POLICY.md": POLICY, "README.md": b"---\nlicense: llama3.1\n---\n# t\n"})
    hub_server.add_repo(SOURCE, files, gated_token=GATED_TOKEN)
    return get_or_extract(SOURCE, -1, token=GATED_TOKEN, cache_dir=tmp_path / "cache"), tmp_path / "cache"


def _files(hub, repo):
    return hub.repos[repo].commits[hub.head(repo)].files


def test_public_push_is_refused_without_acknowledging_the_license(hub_server, gated_layer, capsys):
    art, cache = gated_layer
    with pytest.raises(AccessDeniedError, match="PUBLIC push.*meta/llama-tiny.*gated.*llama3.1"):
        push([art.reference], "lab/public", private=False, token=hub_server.write_token, cache_dir=cache)
    assert "lab/public" not in hub_server.repos and hub_server.settings_calls == []  # nothing created
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cache", "push", art.reference, "--to", "lab/public", "--public", "--token", hub_server.write_token,
                  "--cache-dir", str(cache)])
    assert exit_info.value.code == 2 and "--i-know-the-license" in capsys.readouterr().err


@pytest.mark.parametrize("private", [True, False])
def test_push_mirrors_gating_copies_license_files_and_states_the_license(hub_server, gated_layer, private):
    art, cache = gated_layer
    push([art.reference], "lab/layers", private=private, token=hub_server.write_token, cache_dir=cache,
         i_know_the_license=not private)
    assert hub_server.settings_calls == [("lab/layers", {"gated": "manual"})]
    assert hub_server.repos["lab/layers"].private is private and hub_server.repos["lab/layers"].gated_mode == "manual"
    files = _files(hub_server, "lab/layers")
    assert files["LICENSE"].source.read_bytes() == LICENSE and files["USE_POLICY.md"].source.read_bytes() == POLICY
    card = files["README.md"].source.read_text()
    assert "license: llama3.1" in card and "licence **llama3.1** (gated)" in card and "Built with Llama" in card
    assert "`LICENSE`" in card and "gated (manual approval)" in card


def test_an_ungated_permissive_source_is_pushed_public_as_before(hub_server, tmp_path, monkeypatch):
    folder = make_tiny_model("llama", tmp_path / "llama", num_layers=2)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    hub_server.add_repo("org/open", {**files, "README.md": b"---\nlicense: apache-2.0\n---\n"})
    art = get_or_extract("org/open", -1, cache_dir=tmp_path / "cache")
    push([art.reference], "lab/open", private=False, token=hub_server.write_token, cache_dir=tmp_path / "cache")
    assert not hub_server.repos["lab/open"].private and hub_server.settings_calls == []
    assert "LICENSE" not in _files(hub_server, "lab/open")


@pytest.fixture
def gated_run(gated_layer, assets, tmp_path):
    from pifi_train.config import TrainConfig
    from pifi_train.runner import run_training
    from train_fixtures import FAST_OPTIONS, offline_single_thread

    art, _ = gated_layer
    config = TrainConfig(train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                         slm=str(assets["bert"]), layer_artifact=str(art.path), output_dir=str(tmp_path / "run"),
                         **{**FAST_OPTIONS, "epochs": 1, "max_train_samples": 32})
    with offline_single_thread():
        return run_training(config)[0].run_dir


def test_push_with_layer_follows_the_same_licence_policy(hub_server, gated_run, capsys):
    """`pifi push --with-layer` uploads a layer too: --public is refused as `pifi cache push --public` is, and a
    private push mirrors the gating, copies LICENSE/USE_POLICY and states the licence (issue 21 §2)."""
    token = hub_server.write_token
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["push", "--run-dir", str(gated_run), "--to", "lab/run-public", "--with-layer", "--public",
                  "--token", token])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "PUBLIC push" in err and "meta/llama-tiny" in err and "--i-know-the-license" in err
    assert "lab/run-public" not in hub_server.repos and hub_server.settings_calls == []  # nothing created
    for private, repo in ((True, "lab/run-private"), (False, "lab/run-ack")):
        args = ["push", "--run-dir", str(gated_run), "--to", repo, "--with-layer", "--token", token]
        cli.main(args + ([] if private else ["--public", "--i-know-the-license"]))
        assert hub_server.repos[repo].private is private and hub_server.repos[repo].gated_mode == "manual"
        files = _files(hub_server, repo)
        assert any(f.startswith("layers/") for f in files)
        assert files["LICENSE"].source.read_bytes() == LICENSE and files["USE_POLICY.md"].source.read_bytes() == POLICY
        card = files["README.md"].source.read_text()
        assert "licence **llama3.1** (gated)" in card and "Built with Llama" in card
    assert hub_server.settings_calls == [("lab/run-private", {"gated": "manual"}), ("lab/run-ack", {"gated": "manual"})]
    cli.main(["push", "--run-dir", str(gated_run), "--to", "lab/run-by-ref", "--public", "--token", token])
    assert not any(f.startswith("layers/") for f in _files(hub_server, "lab/run-by-ref"))  # no layer: no licence gate


def test_a_public_push_of_a_layer_whose_gating_cannot_be_read_is_refused(hub_server, tmp_path):
    folder = make_tiny_model("llama", tmp_path / "llama", num_layers=2)
    hub_server.add_repo("org/gone", {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})
    art = get_or_extract("org/gone", -1, cache_dir=tmp_path / "cache")
    del hub_server.repos["org/gone"]  # deleted (or made private) since: its gating and licence cannot be read
    with pytest.raises(AccessDeniedError, match=r"PUBLIC push .*org/gone \(gating unknown\)"):
        push([art.reference], "lab/x", private=False, token=hub_server.write_token, cache_dir=tmp_path / "cache")
    assert "lab/x" not in hub_server.repos
    result = push([art.reference], "lab/x", private=False, token=hub_server.write_token, cache_dir=tmp_path / "cache",
                  i_know_the_license=True)
    assert any("could not tell whether org/gone is gated" in w for w in result.warnings)
