"""Every table and figure of the paper as a grid (:class:`~pifi_train.paper.grid.Table`).

The recipe is pifi's defaults (the authors': Adam 5e-5, batch 32, 3 epochs, max length 100, ...), 5 seeds
(2023…2027), the last layer of Llama-3.1-8B unless a table varies it. The paper's numbers shown beside pifi's
are in ``numbers.csv`` (:mod:`pifi_train.paper.numbers`). Torch-free.
"""

from __future__ import annotations

from typing import Any

from .grid import Arm, Table
from .names import FIVE_TASKS, MODELS, NLU_TASKS

POOLING_MEAN = {"pooling": "mean"}  # h_enc = mean of the real tokens' states (Table 10)
POOLING_MEAN_PADDING = {"pooling": "mean_with_padding"}  # ... of every position, padding included
METHOD_LLM = "llm"  # no SLM: the LLM's embedding rows -> the frozen layer -> head (Table 15)
# Table 2's other columns, scored with the authors' models (each an option that adds metrics, not a result option)
GENERATION_METRICS = {"meteor": True, "bertscore_model": "google-bert/bert-base-multilingual-cased",
                      "bartscore_model": "facebook/bart-large-cnn"}
COST_COMMAND = "pifi cost"

LLAMA = "Llama-3.1-8B"
SECTION_47_LLMS = ("Llama-3.1-8B", "Mistral-7B-v0.1", "Mistral-7B-v0.3", "Qwen2-7B", "Gemma-2-9B", "Falcon-7B")
SWEEP_POSITIONS = (1, 4, 8, 12, 16, 20, 24, 28, 32)  # App. B.1: "layers 1, 4, 8, ..., 32" (1-based)
ENCODERS = ("BERT-base", "RoBERTa-base", "ELECTRA-base", "DeBERTa-base", "DeBERTa-V3-base")


def base(label: str = "{slm}", **kw: Any) -> Arm:
    """The SLM fine-tuned alone."""
    return Arm(label, **{"method": "base", **kw})


def pifi(llm: str = LLAMA, label: str | None = None, layers: tuple[int, ...] = (-1,), versus: str | None = "{slm}",
         **kw: Any) -> Arm:
    """The SLM with the frozen layer(s) of ``llm`` (the last one by default), compared with the base SLM."""
    return Arm(label or f"+ PiFi ({llm})", method="pifi", llm=llm, layers=layers, versus=versus, **kw)


PIFI = pifi()
PIFI_LABEL = PIFI.label


def _sweep(llms: tuple[str, ...]) -> tuple[Arm, ...]:
    """PiFi with each swept position (1-based, as the paper) that the LLM has."""
    return tuple(pifi(llm, f"+ PiFi ({llm}, layer {p})", layers=(p - 1,)) for llm in llms
                 for p in SWEEP_POSITIONS if p <= (MODELS[llm].num_layers or 0))


TABLES: dict[str, Table] = {t.key: t for t in [
    Table("1", "NLU: five encoder SLMs ± the last Llama-3.1-8B layer on 7 classification/NLI tasks and SQuAD", "§4.2",
          ENCODERS, NLU_TASKS, (base(), PIFI), average=True,
          note="SQuAD: --protocol paper (the authors' split, 100 tokens; EM/F1 beside their token-span EM/F1). "
               "The paper gives F1 for the PiFi rows only."),
    Table("2", "NLG: T5-base and BART-base ± PiFi on Multi30K (translation) and CNN/Daily Mail (summarization)", "§4.3",
          ("T5-base", "BART-base"), ("Multi30K", "CNN/Daily Mail"), (base(options=GENERATION_METRICS), pifi(options=GENERATION_METRICS)),
          metrics=("bleu", "rouge", "meteor", "bertscore", "bartscore"),
          note="BLEU = the mean of cumulative BLEU-1..4 (pifi's bleu_avg), ROUGE = ROUGE-L. METEOR is nltk's (needs its "
               "WordNet data: python -m nltk.downloader wordnet), not the authors' Java METEOR 1.5."),
    Table("3", "domain shift: train on IMDB, Tweet (Sentiment) or CR, test on all three", "§4.4",
          ("BERT-base",), ("IMDB", "Tweet (Sentiment)", "CR"),
          (base(), PIFI, base("BERT-large", slm="BERT-large", versus=PIFI_LABEL)), cross_test=True,
          note="The paper's rows say 'Llam-3-8B'; their numbers are Table 1's Llama-3.1-8B runs."),
    Table("4", "multilingual: mBERT-base with the last layer of English, Korean and German Llama-3-8B", "§4.5",
          ("mBERT-base",), ("NSMC (Korean)", "Filmstarts (German)"),
          (base(), pifi("Llama-3-8B", "+ PiFi (Llama-3-8B English)"),
           pifi("Llama-3-8B Korean", versus="+ PiFi (Llama-3-8B English)"),
           pifi("Llama-3-8B German", versus="+ PiFi (Llama-3-8B English)"))),
    Table("5", "PiFi-Random (frozen random layer) and PiFi-Random-Full (random layer, trained) vs PiFi", "§4.6",
          ("BERT-base",), FIVE_TASKS,
          (base(), pifi(label="+ PiFi-Random (Llama-3.1-8B)", options={"layer_init": "random"}),
           pifi(label="+ PiFi-Random-Full (Llama-3.1-8B)", options={"layer_init": "random", "train_layer": True}),
           PIFI)),
    Table("6", "PiFi (BERT-base, 334 M parameters) vs BERT-large (336 M)", "§4.6", ("BERT-base",), FIVE_TASKS,
          (base(), PIFI, base("BERT-large", slm="BERT-large", versus=PIFI_LABEL))),
    Table("7", "the last layer of six LLMs", "§4.7", ("BERT-base",), FIVE_TASKS,
          (base(), *(pifi(llm) for llm in SECTION_47_LLMS))),
    Table("8", "LLM size within one family: the last layer of Qwen2 0.5B, 1.5B, 7B", "§4.8", ("BERT-base",), FIVE_TASKS,
          (base(), pifi("Qwen2-0.5B"), pifi("Qwen2-1.5B"), pifi("Qwen2-7B"))),
    Table("9", "a decoder SLM: SmolLM2-135M ± PiFi (token 0 pooled, as the authors did)", "App. B.2",
          ("SmolLM2-135M",), FIVE_TASKS,
          (base(options={"pooling": "first"}), pifi(options={"pooling": "first"}))),
    Table("10", "h_enc: the CLS vector vs the mean of the token states without and with padding", "App. B.3",
          ("BERT-base",), FIVE_TASKS[:3],
          (pifi(label="CLS", versus=None),
           pifi(label="Average Pooling (w/o padding)", options=POOLING_MEAN, versus="CLS"),
           pifi(label="Average Pooling (w/ padding)", options=POOLING_MEAN_PADDING, versus="CLS"))),
    Table("11", "a trainable (fully fine-tuned) LLM layer vs the frozen one", "App. B.4", ("BERT-base",),
          FIVE_TASKS[:3],
          (base(), PIFI, pifi(label="+ PiFi-full (Llama-3.1-8B)", options={"train_layer": True}, versus=PIFI_LABEL))),
    Table("12", "the instruction-tuned Llama-3.1-8B-Instruct vs the base model (p-value between the PiFi arms)",
          "App. B.5", ("BERT-base",), FIVE_TASKS,
          (base(), PIFI, pifi("Llama-3.1-8B-Instruct", versus=PIFI_LABEL))),
    Table("13", "larger LLMs: Llama-3.1 8B/70B, Qwen2.5 7B/32B/72B", "App. B.6", ("BERT-base",), FIVE_TASKS,
          (base(), *(pifi(llm) for llm in ("Llama-3.1-8B", "Llama-3.1-70B", "Qwen2.5-7B", "Qwen2.5-32B",
                                           "Qwen2.5-72B"))),
          note="The paper's BERT-base CoLA here is 80.77 (80.10 in Table 1)."),
    Table("14", "two layers of Llama-3.1-70B vs one", "App. B.6", ("BERT-base",), FIVE_TASKS,
          (base(), PIFI, pifi("Llama-3.1-70B"),
           pifi("Llama-3.1-70B", "+ PiFi-2 layers (Llama-3.1-70B)", layers=(-2, -1),
                versus="+ PiFi (Llama-3.1-70B)"))),
    Table("15", "a single frozen LLM layer with a head and no SLM: the first and last layer of Llama-3.1-8B",
          "App. B.7", ("BERT-base",), FIVE_TASKS,
          (base(), PIFI,
           Arm("Single layer: First (Llama-3.1-8B)", METHOD_LLM, LLAMA, (0,), versus=PIFI_LABEL),
           Arm("Single layer: Last (Llama-3.1-8B)", METHOD_LLM, LLAMA, (-1,), versus=PIFI_LABEL))),
    Table("16", "cost at inference: FLOPs and GPU memory of BERT-base ± PiFi", "App. B.8",
          metrics=("gflops", "memory_gb"),
          commands=(f"{COST_COMMAND} --slm bert-base-uncased --llm Llama-3.1-8B   # base vs PiFi: FLOPs, memory",
                    f"{COST_COMMAND} --slm bert-base-uncased --llm Llama-3.1-8B --device cuda --random-weights"
                    "   # measured GPU memory and latency"),
          note="The paper measured FLOPs with fvcore and memory with the PyTorch profiler."),
    Table("17", "PiFi vs ZeroGen (BERT-base trained on 200,000 synthetic examples per domain)", "App. B.9",
          ("BERT-base",), FIVE_TASKS, (base(), PIFI),
          needs=("ZeroGen's synthetic training sets (200,000 examples per domain from GPT2-XL and Llama-3.1-8B): "
                 "pifi neither ships nor generates them; train on such a set with --train-file/--test-file",)),
    Table("18", "LoRA (rank 8, alpha 16, dropout 0.1) on BERT-base vs PiFi", "App. B.9", ("BERT-base",), FIVE_TASKS,
          (base(), PIFI, base("BERT-base + LoRA", method="lora",
                              options={"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1}, versus=PIFI_LABEL)),
          note="Needs pifi[lora]."),
    Table("19", "10 % of the training data (seeded, stratified)", "App. B.10", ("BERT-base",), FIVE_TASKS,
          (base(), PIFI, base("{slm}-10%", options={"train_fraction": 0.1}),
           pifi(label="+ PiFi-10% (Llama-3.1-8B)", options={"train_fraction": 0.1}, versus="{slm}-10%"))),
    Table("20", "parameters of each module (SLM, L_LLM, L_in, L_out, head) for 15 SLM × LLM pairs", "App. A",
          metrics=("params_slm_m", "params_layer_m", "params_l_in_m", "params_l_out_m", "params_head_m"),
          commands=(f"{COST_COMMAND} --slm bert-base-uncased --llm Llama-3.1-8B   # parameters per module",
                    "# ... one per SLM × LLM pair of the table (--slm and --llm take a folder, a config.json or a "
                    "name pifi knows)")),
    Table("fig2", "PiFi on SST-2 with layer 1, 4, 8, ..., 32 of each LLM of §4.7", "App. B.1", ("BERT-base",),
          ("SST-2",), (base(), *_sweep(SECTION_47_LLMS)), metrics=("accuracy",),
          note="The figure's points are not in the paper's text: pifi's curve is drawn without the paper's. "
               "Positions an LLM does not have (Qwen2-7B has 28 layers) are left out."),
    Table("fig3", "PiFi on Multi30K (T5-base) with layer 1, 4, 8, ..., 32 of Llama-3.1-8B", "App. B.1", ("T5-base",),
          ("Multi30K",), (base(), *_sweep((LLAMA,))), metrics=("bleu",),
          note="The reference curve is the authors' own logs (the paper's figure has no numbers in its text): "
               "layer 12 BLEU-avg 0.436 beats the last layer's 0.400 there, unlike the paper's statement."),
]}


def table_keys() -> list[str]:
    """Tables in order, then figures."""
    return sorted((k for k in TABLES if not k.startswith("fig")), key=int) + sorted(k for k in TABLES if k.startswith("fig"))
