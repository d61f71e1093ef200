"""Stable Diffusion training task (SD 1.x / 2.x / SDXL): noise prediction, prior preservation, min-SNR."""
