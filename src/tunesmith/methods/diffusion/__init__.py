"""Stable Diffusion methods; importing this package registers them in the `diffusion` family.

Imported in the order users see them listed: LoRA on captioned images, full DreamBooth, DreamBooth with LoRA.
"""

from tunesmith.methods.diffusion import lora  # noqa: F401  isort: skip
from tunesmith.methods.diffusion import dreambooth  # noqa: F401  isort: skip
from tunesmith.methods.diffusion import dreambooth_lora  # noqa: F401  isort: skip
