"""Image data for Stable Diffusion: folders and captions, buckets, augmentation, class images, latent caches."""
