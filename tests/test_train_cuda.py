"""On a GPU (skipped without CUDA): bf16 autocast with the frozen layer held in bf16, fp16 with a grad scaler."""

import json

import pytest
import torch

from pifi_extract.artifact import load_artifact_tensors
from pifi_train.config import TrainConfig, resolve_precision
from pifi_train.families.classification.data import Examples, TaskData
from pifi_train.families.classification.family import CLASSIFICATION
from pifi_train.families.classification.trainer import ClassificationTrainer as Trainer
from pifi_train.distributed import DistContext
from pifi_train.frozen_layer import load_layer
from pifi_train.families.classification.model import SequenceClassifier as PifiModel
from pifi_train.options import ModelOptions
from pifi_train.families.classification.predict import accuracy, predict, read_inputs
from pifi_train.run_record import load_run
from pifi_train.runner import run_training
from pifi_train.slm import load_slm, load_tokenizer
from train_fixtures import FAST_OPTIONS, assets, second_artifact, synthetic_rows, train_env  # noqa: F401 - fixtures

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
              pytest.mark.usefixtures("train_env")]
CUDA = torch.device("cuda", 0)


def _config(assets, out, **overrides):
    values = dict(train_file=str(assets["train"]), validation_file=str(assets["validation"]),
                  test_file=str(assets["test"]), slm=str(assets["bert"]), layer_artifact=str(assets["artifact"]),
                  output_dir=str(out), device="cuda", **FAST_OPTIONS)
    return TrainConfig(**{**values, **overrides})


@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_trains_on_gpu_in_mixed_precision(assets, tmp_path, precision):
    result = run_training(_config(assets, tmp_path / "run", precision=precision))[0]
    config = json.loads((result.run_dir / "config.json").read_text())
    expected = "bfloat16" if precision == "auto" and torch.cuda.is_bf16_supported() else "float16"
    assert config["precision"]["layer_dtype"] == expected == config["precision"]["autocast"]
    assert config["precision"]["grad_scaler"] == (expected == "float16")
    assert result.metrics["final"]["test"]["accuracy"] >= 0.9
    loaded = load_run(result.run_dir, device="cuda")
    assert loaded.model.layer.dtype == loaded.precision.layer_dtype and loaded.model.l_in.weight.dtype == torch.float32
    texts, pairs, labels = read_inputs(assets["test"], loaded)
    assert accuracy(predict(loaded, texts, pairs), labels, loaded.label_names) >= 0.9


def test_bf16_layer_on_gpu_is_untouched_by_training_and_l_in_learns(assets, tmp_path):
    precision = resolve_precision("auto", CUDA)
    torch.manual_seed(0)
    layer = load_layer(assets["artifact"], device=CUDA, dtype=precision.layer_dtype)
    model = PifiModel(load_slm(str(assets["bert"])), 2, ModelOptions(dropout=0.0), layer).to(CUDA)
    rows = synthetic_rows(64, seed=9)
    examples = Examples([r["text"] for r in rows], None, [r["label"] for r in rows])
    config = TrainConfig(train_file="x", slm="x", layer_artifact="x", batch_size=16, lr=1e-2)
    trainer = Trainer(model, TaskData("t", ["0", "1"], examples, examples, None), load_tokenizer(str(assets["bert"])),
                      config, 0, DistContext(device=CUDA), precision, tmp_path, family=CLASSIFICATION)
    before = model.l_in.weight.detach().clone()
    trainer.train_epoch(1)
    assert not torch.equal(before, model.l_in.weight) and model.l_in.weight.dtype == torch.float32
    original, _ = load_artifact_tensors(assets["artifact"])
    current = model.layer.layer.state_dict()
    assert all(current[k].dtype == precision.layer_dtype and current[k].is_cuda for k in original)
    assert all(torch.equal(current[k].cpu(), original[k].to(precision.layer_dtype)) for k in original)


def test_two_layer_stack_trains_on_gpu_in_bf16(assets, second_artifact, tmp_path):
    layers = [str(assets["artifact"]), str(second_artifact)]
    result = run_training(_config(assets, tmp_path / "stack", layer_artifact=layers))[0]
    assert result.metrics["final"]["test"]["accuracy"] >= 0.9
    loaded = load_run(result.run_dir, device="cuda")
    assert len(loaded.model.layer.layers) == 2 and loaded.model.layer.dtype == loaded.precision.layer_dtype
    texts, pairs, labels = read_inputs(assets["test"], loaded)
    assert accuracy(predict(loaded, texts, pairs), labels, loaded.label_names) >= 0.9
