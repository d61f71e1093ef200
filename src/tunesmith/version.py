"""The installed tunesmith version (its own module: provenance needs it without importing the API)."""

__version__ = "0.1.0"
