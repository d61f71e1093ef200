"""Language-model comparisons."""
