"""The real huggingface_hub client against the loopback Hub of tests/hub_server.py."""

from pathlib import Path

import httpx2
import pytest
from huggingface_hub import (
    HfApi,
    get_session,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.utils import build_hf_headers
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hub_server import parse_range

REPO = "org/tiny"
README = b"---\nlicense: apache-2.0\n---\n# tiny\n"
CONFIG = b'{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}'
WEIGHTS = bytes(range(256)) * 40  # 10240 bytes, an "LFS" file (.safetensors)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "sub").mkdir(parents=True)
    (folder / "README.md").write_bytes(README)
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "sub" / "notes.txt").write_bytes(b"hello\n")
    return folder


@pytest.fixture
def served(hub_server, repo_dir):
    sha = hub_server.add_repo(REPO, repo_dir)
    return hub_server, sha


def _get(url: str, **headers: str) -> httpx2.Response:
    return get_session().get(url, headers={**build_hf_headers(), **headers})


def test_model_info_and_listing(served):
    server, sha = served
    api = HfApi()
    info = api.model_info(REPO)
    assert info.sha == sha and len(sha) == 40
    names = ["README.md", "config.json", "model.safetensors", "sub/notes.txt"]
    assert sorted(s.rfilename for s in info.siblings) == names
    assert info.card_data.license == "apache-2.0"
    assert info.config["model_type"] == "llama" and info.gated is False
    sizes = {s.rfilename: (s.size, s.lfs) for s in api.model_info(REPO, files_metadata=True).siblings}
    assert sizes["model.safetensors"][0] == len(WEIGHTS) and sizes["model.safetensors"][1].size == len(WEIGHTS)
    assert sizes["config.json"] == (len(CONFIG), None)
    assert sorted(api.list_repo_files(REPO)) == sorted(sizes)
    top = {e.path: type(e).__name__ for e in api.list_repo_tree(REPO, revision=sha)}
    assert top == {**dict.fromkeys(names[:3], "RepoFile"), "sub": "RepoFolder"}
    assert [e.path for e in api.list_repo_tree(REPO, path_in_repo="sub")] == ["sub/notes.txt"]
    assert api.repo_exists(REPO) and not api.repo_exists("org/missing")
    assert api.file_exists(REPO, "config.json") and not api.file_exists(REPO, "nope.json")
    assert api.model_info(REPO, revision=sha[:10]).sha == sha
    infos = {i.path: i for i in api.get_paths_info(REPO, ["config.json", "sub", "absent"])}
    assert set(infos) == {"config.json", "sub"} and infos["config.json"].size == len(CONFIG)
    assert [(b.name, b.target_commit) for b in api.list_repo_refs(REPO).branches] == [("main", sha)]


def test_hf_hub_download_counts_body_bytes(served):
    server, sha = served
    path = hf_hub_download(REPO, "model.safetensors")
    assert Path(path).read_bytes() == WEIGHTS
    assert server.bytes_for(REPO, "model.safetensors") == len(WEIGHTS) == server.bytes_sent
    assert f"/snapshots/{sha}/" in path
    methods = [(r.method, r.status) for r in server.requests(path_contains="/resolve/")]
    assert methods == [("HEAD", 200), ("GET", 200)]
    head = get_session().head(hf_hub_url(REPO, "model.safetensors"))
    assert head.headers["ETag"] == f'"{server.etag(REPO, "model.safetensors")}"'
    assert head.headers["X-Repo-Commit"] == sha and head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["X-Linked-Size"] == str(len(WEIGHTS))
    assert not any("xet" in r.path for r in server.log)


def test_range_reads_and_416(served):
    server, sha = served
    url = hf_hub_url(REPO, "model.safetensors", revision=sha)
    r = _get(url, Range="bytes=10-19")
    assert r.status_code == 206 and r.content == WEIGHTS[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(WEIGHTS)}" and r.headers["Content-Length"] == "10"
    r = _get(url, Range="bytes=10200-")
    assert r.status_code == 206 and r.content == WEIGHTS[10200:]
    r = _get(url, Range="bytes=-7")
    assert r.status_code == 206 and r.content == WEIGHTS[-7:]
    assert r.headers["Content-Range"] == f"bytes {len(WEIGHTS) - 7}-{len(WEIGHTS) - 1}/{len(WEIGHTS)}"
    r = _get(url, Range=f"bytes={len(WEIGHTS)}-")
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(WEIGHTS)}"
    assert server.bytes_sent == 10 + 40 + 7
    assert [r.range for r in server.requests("GET")][-1] == f"bytes={len(WEIGHTS)}-"


@pytest.mark.parametrize(
    "header, expected",
    [("bytes=0-0", (0, 0)), ("bytes=5-100", (5, 9)), ("bytes=-3", (7, 9)), ("bytes=-30", (0, 9)),
     ("bytes=3-", (3, 9)), ("bytes=4-2", None), ("items=1-2", None), ("bytes=1-2,4-5", None), (None, None)],
)
def test_parse_range(header, expected):
    assert parse_range(header, 10) == expected


def test_gated_repo_needs_its_token(hub_server, repo_dir):
    hub_server.add_repo("org/gated", repo_dir, gated_token="hf_gate")
    assert HfApi().model_info("org/gated").gated == "manual"  # info is public, files are not
    with pytest.raises(GatedRepoError) as anonymous:
        hf_hub_download("org/gated", "config.json")
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as wrong:
        hf_hub_download("org/gated", "config.json", token="hf_other")
    assert wrong.value.response.status_code == 403
    assert Path(hf_hub_download("org/gated", "config.json", token="hf_gate")).read_bytes() == CONFIG


def test_not_found_errors(served):
    server, _ = served
    with pytest.raises(RepositoryNotFoundError) as missing_repo:
        hf_hub_download("org/missing", "config.json")
    assert not isinstance(missing_repo.value, GatedRepoError)
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("org/missing")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(REPO, revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.bin")
    server.add_repo("org/secret", {"a.txt": b"a"}, private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("org/secret")
    assert HfApi().model_info("org/secret", token=server.write_token).private is True


def test_dropped_body_is_a_short_read_then_resumes(served):
    server, sha = served
    url = hf_hub_url(REPO, "model.safetensors", revision=sha)
    server.drop_every(1, after_bytes=100, times=1)
    got = bytearray()
    with pytest.raises(httpx2.RemoteProtocolError):
        with get_session().stream("GET", url, headers=build_hf_headers()) as r:
            assert r.headers["Content-Length"] == str(len(WEIGHTS))
            for chunk in r.iter_bytes():
                got += chunk
    assert bytes(got) == WEIGHTS[:100] and server.bytes_for(REPO, "model.safetensors") == 100
    r = _get(url, Range=f"bytes={len(got)}-")  # the drop budget is spent: the resume completes
    assert r.status_code == 206 and bytes(got) + r.content == WEIGHTS


def test_snapshot_download(served, tmp_path):
    server, sha = served
    folder = Path(snapshot_download(REPO))
    assert folder.name == sha
    assert (folder / "sub" / "notes.txt").read_bytes() == b"hello\n"
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    local = Path(snapshot_download(REPO, local_dir=tmp_path / "copy", allow_patterns=["*.json"]))
    assert [p.name for p in local.iterdir() if p.is_file()] == ["config.json"]


def test_replace_file_and_branches(hub_server):
    old = hub_server.add_repo("org/r", {"w.bin": b"old"}, revisions={"v1": {"w.bin": b"v1!"}, "stable": None})
    old_etag = hub_server.etag("org/r", "w.bin")
    new = hub_server.replace_file("org/r", "w.bin", b"new content")
    assert new != old and hub_server.etag("org/r", "w.bin") != old_etag
    assert _get(hf_hub_url("org/r", "w.bin")).content == b"new content"
    assert _get(hf_hub_url("org/r", "w.bin", revision=old)).content == b"old"
    assert _get(hf_hub_url("org/r", "w.bin", revision="stable")).content == b"old"
    assert _get(hf_hub_url("org/r", "w.bin", revision="v1")).content == b"v1!"
    same = hub_server.replace_file("org/r", "w.bin", b"swapped", new_commit=False)
    assert same == new and _get(hf_hub_url("org/r", "w.bin", revision=new)).content == b"swapped"


def test_fail_next(served):
    server, _ = served
    server.fail_next(1, status=503, path_contains="/api/models")
    with pytest.raises(HfHubHTTPError) as err:
        HfApi().model_info(REPO)
    assert err.value.response.status_code == 503
    assert HfApi().model_info(REPO).id == REPO


def test_upload_round_trip(hub_server, tmp_path):
    api = HfApi()
    with pytest.raises(HfHubHTTPError) as no_token:
        api.create_repo("org/up")
    assert no_token.value.response.status_code == 401
    url = api.create_repo("org/up", token=hub_server.write_token)
    assert url.repo_id == "org/up"
    api.create_repo("org/up", token=hub_server.write_token, exist_ok=True)
    info = api.upload_file(
        path_or_fileobj=b"uploaded bytes", path_in_repo="dir/file.bin", repo_id="org/up", token=hub_server.write_token
    )
    assert info.oid == hub_server.head("org/up")
    assert Path(hf_hub_download("org/up", "dir/file.bin")).read_bytes() == b"uploaded bytes"
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.txt").write_text("A")
    (tmp_path / "f" / "README.md").write_text("---\nlicense: mit\n---\n")
    api.upload_folder(folder_path=tmp_path / "f", repo_id="org/up", token=hub_server.write_token)
    assert sorted(api.list_repo_files("org/up")) == ["README.md", "a.txt", "dir/file.bin"]
    assert api.model_info("org/up").card_data.license == "mit"
    api.delete_file("dir/file.bin", repo_id="org/up", token=hub_server.write_token)
    assert sorted(api.list_repo_files("org/up")) == ["README.md", "a.txt"]
    assert api.whoami(token=hub_server.write_token)["name"] == "test-user"
    assert not any("xet" in r.path or "lfs" in r.path for r in hub_server.log)
