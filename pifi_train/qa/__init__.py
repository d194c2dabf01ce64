"""Extractive question answering with PiFi (paper Table 1, SQuAD): every token -> L_in -> frozen layer -> L_out
-> start/end logits; SQuAD v1.1/v2 data with stride windows; the official EM/F1 (and the paper's token-span EM/F1
under ``--protocol paper``)."""
