"""The sequence-to-sequence family (T5, BART...): its Family object is in ``family.py``."""
