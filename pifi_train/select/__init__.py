"""Layer selection without holding the LLM: ``pifi select`` and ``pifi sweep``.

* :mod:`.scoring`: pure scores on pooled states (the PIFI-ILM fork's ILM score, a held-out probe, ranks, Spearman);
* :mod:`.embedding_rows`, :mod:`.tokenizer`, :mod:`.stream`: the streamed pooled states, one layer at a time;
* :mod:`.config`, :mod:`.selection`: ``SelectConfig`` and ``run_select`` (selection.json, --extract-top, plot);
* :mod:`.sweep`: ``run_sweep`` (one training per layer and seed, plus the base SLM).
"""
