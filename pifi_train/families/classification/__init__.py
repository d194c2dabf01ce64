"""The classification family (sequence classification and NLI): its Family object is in ``family.py``."""
