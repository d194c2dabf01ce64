"""The extractive-QA family (SQuAD v1.1 / v2.0): its Family object is in ``family.py``."""
