"""PifiModel inside a real transformers.Trainer: loss falls, the layer stays bit-identical, the saved
folder (and the Trainer's own checkpoint) hold no layer tensor, and the folder reloads as a pifi run."""

import json

import pytest
import torch
from safetensors import safe_open

import cli
from pifi_train import PifiModel, load_classifier
from train_fixtures import assets, synthetic_rows, train_env  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("train_env")


def _dataset(tokenizer, n, seed):
    rows = synthetic_rows(n, seed)
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=16)
    return [{"input_ids": ids, "attention_mask": mask, "labels": r["label"]}
            for ids, mask, r in zip(encoded["input_ids"], encoded["attention_mask"], rows)]


def _tensor_names(path):
    with safe_open(str(path), "pt") as f:
        return list(f.keys())


def test_pifi_model_trains_in_transformers_trainer(assets, tmp_path, capsys):
    pytest.importorskip("accelerate")
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    model = PifiModel.from_slm(str(assets["bert"]), str(assets["artifact"]), num_labels=2, dropout=0.0,
                               label_names=["neg", "pos"])
    assert model.label_smoothing == 0.05  # the run's (TrainConfig's) default
    before = {k: v.clone() for k, v in model.layer.state_dict().items()}
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), num_train_epochs=4, per_device_train_batch_size=16,
                             learning_rate=3e-3, logging_steps=5, save_strategy="epoch", save_total_limit=1,
                             report_to="none", use_cpu=True, disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(model.tokenizer, 192, 0),
                      eval_dataset=_dataset(model.tokenizer, 64, 1),
                      data_collator=DataCollatorWithPadding(model.tokenizer))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0] - 0.3
    assert trainer.evaluate()["eval_loss"] < 0.5
    after = model.layer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical

    checkpoints = sorted((tmp_path / "hf").glob("checkpoint-*"))
    assert checkpoints and not any(k.startswith("layer.") for k in _tensor_names(checkpoints[-1] / "model.safetensors"))

    out = tmp_path / "saved"
    model.save_pretrained(out)
    names = [n for p in out.rglob("*.safetensors") for n in _tensor_names(p)]
    assert names and not any(n.startswith("layer.") for n in names) and any("l_in" in n for n in names)
    record = json.loads((out / "config.json").read_text())
    assert record["layer"]["sha256"] and record["model"]["labels"] == ["neg", "pos"]

    reloaded = PifiModel.from_pretrained(str(out))
    batch = model.tokenizer(["w1 good w2", "w3 bad"], return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        expected = model(**batch)
        output = reloaded(**batch, labels=torch.tensor([1, 0]))
    assert torch.allclose(output.logits, expected, atol=1e-5) and output.loss is not None
    classify = load_classifier(out, device="cpu", batch_size=1)
    predictions = classify(["w1 good w2", "w3 bad"])
    assert [p.label for p in predictions] == ["pos", "neg"]
    capsys.readouterr()  # the Trainer's log lines
    cli.main(["predict", "--run-dir", str(out), "--text", "w1 good w2", "--text", "w3 bad", "--device", "cpu"])
    printed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in printed] == ["pos", "neg"]  # pifi predict agrees with load_classifier
    assert printed[0][1] == "  ".join(f"{k} {v:.4f}" for k, v in predictions[0].probabilities.items())


def test_trainer_resume_and_best_model_reload_pifi_checkpoints_without_the_layer(assets, tmp_path, caplog):
    """transformers.Trainer's resume_from_checkpoint and load_best_model_at_end (issue 21 §5): they reload a
    checkpoint that holds no layer tensor, without an error or a missing-keys warning; the layer stays
    bit-identical and out of every checkpoint."""
    pytest.importorskip("accelerate")
    import logging

    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    def trainer_for(model, epochs):
        args = TrainingArguments(output_dir=str(tmp_path / "hf"), num_train_epochs=epochs,
                                 per_device_train_batch_size=16, learning_rate=3e-3, eval_strategy="epoch",
                                 save_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="loss",
                                 report_to="none", use_cpu=True, disable_tqdm=True, seed=0)
        return Trainer(model=model, args=args, train_dataset=_dataset(model.tokenizer, 64, 0),
                       eval_dataset=_dataset(model.tokenizer, 32, 1),
                       data_collator=DataCollatorWithPadding(model.tokenizer))

    model = PifiModel.from_slm(str(assets["bert"]), str(assets["artifact"]), num_labels=2, dropout=0.0)
    layer = {k: v.clone() for k, v in model.layer.state_dict().items()}
    trainer_for(model, 1).train()
    fresh = PifiModel.from_slm(str(assets["bert"]), str(assets["artifact"]), num_labels=2, dropout=0.0)
    with caplog.at_level(logging.WARNING, logger="transformers"):
        trainer = trainer_for(fresh, 2)
        trainer.train(resume_from_checkpoint=True)  # from checkpoint-4, then the best epoch reloaded at the end
    assert trainer.state.epoch == 2 and trainer.state.best_model_checkpoint
    assert not [r for r in caplog.records if "missing keys" in r.getMessage()]
    assert all(torch.equal(fresh.layer.state_dict()[k], layer[k]) for k in layer)
    for checkpoint in (tmp_path / "hf").glob("checkpoint-*"):
        assert not any(k.startswith("layer.") for k in _tensor_names(checkpoint / "model.safetensors"))
