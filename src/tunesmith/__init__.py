"""tunesmith: local-first fine-tuning with measured before/after numbers."""

__version__ = "0.1.0"
