"""Encoder-decoder PiFi (paper §3.2, Table 2): the frozen LLM layer between a T5/BART encoder and its decoder."""
