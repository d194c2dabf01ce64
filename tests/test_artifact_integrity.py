"""The artifact's header is covered by a digest (format 2): renamed tensors or an edited config fail; format 1 still reads."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from pifi_extract import extract_layer, read_artifact, verify_artifact
from pifi_extract.artifact import FORMAT_VERSION, METADATA_KEYS, header_sha256
from pifi_extract.errors import ArtifactError
from pifi_extract.safetensors_header import PREFIX_BYTES, parse_header
from tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    folder = make_tiny_model("llama", tmp_path_factory.mktemp("models") / "llama", num_layers=2)
    return extract_layer(str(folder), -1, tmp_path_factory.mktemp("art") / "layer.safetensors").path


def _split(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:PREFIX_BYTES])
    return json.loads(raw[PREFIX_BYTES : PREFIX_BYTES + n]), raw[PREFIX_BYTES + n :]


def _rewrite(path: Path, header: dict, data: bytes, out: Path) -> Path:
    text = json.dumps(header).encode()
    out.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return out


def test_new_artifacts_record_a_header_digest_that_matches(artifact):
    info = verify_artifact(artifact)
    assert info.format_version == FORMAT_VERSION == 2
    raw = artifact.read_bytes()
    (n,) = struct.unpack("<Q", raw[:PREFIX_BYTES])
    assert info.header_sha256 == header_sha256(parse_header(raw[PREFIX_BYTES : PREFIX_BYTES + n], len(raw), "a"))
    assert len(info.header_sha256) == 64 and set(info.header_sha256) != {"f"}


def test_swapped_tensor_names_fail_read_and_verify(artifact, tmp_path):
    header, data = _split(artifact)
    header["self_attn.k_proj.weight"], header["self_attn.v_proj.weight"] = (
        header["self_attn.v_proj.weight"], header["self_attn.k_proj.weight"])
    bad = _rewrite(artifact, header, data, tmp_path / "swapped.safetensors")
    for check in (read_artifact, verify_artifact):
        with pytest.raises(ArtifactError, match="header .* was changed after it was written"):
            check(bad)


def test_an_edited_config_fails(artifact, tmp_path):
    header, data = _split(artifact)
    meta = header["__metadata__"]
    config = json.loads(meta[METADATA_KEYS["config"]])
    config["rope_theta"] = 1234.0
    meta[METADATA_KEYS["config"]] = json.dumps(config, sort_keys=True)
    with pytest.raises(ArtifactError, match="header sha256"):
        read_artifact(_rewrite(artifact, header, data, tmp_path / "edited.safetensors"))


def test_a_v2_artifact_without_its_header_digest_fails(artifact, tmp_path):
    header, data = _split(artifact)
    del header["__metadata__"][METADATA_KEYS["header_sha256"]]
    with pytest.raises(ArtifactError, match="has no header sha256"):
        read_artifact(_rewrite(artifact, header, data, tmp_path / "stripped.safetensors"))


def test_format_1_artifacts_without_a_header_digest_still_read_and_verify(artifact, tmp_path):
    header, data = _split(artifact)
    del header["__metadata__"][METADATA_KEYS["header_sha256"]]
    header["__metadata__"][METADATA_KEYS["format"]] = "1"
    info = verify_artifact(_rewrite(artifact, header, data, tmp_path / "v1.safetensors"))
    assert info.format_version == 1 and info.header_sha256 is None
    assert info.data_sha256 == read_artifact(artifact).data_sha256
