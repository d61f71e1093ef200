"""Stable Diffusion comparisons and full-size architecture checks."""
