"""Process-wide defaults: offline and without telemetry (the CLI and the Python API), and, for the command line,
no noise that is not ours."""

from __future__ import annotations

import logging
import os
import warnings


def offline_defaults() -> None:
    """Offline and private by default: nothing is fetched or reported unless the user opts in (setdefault, so an
    environment that says otherwise wins)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def configure() -> None:
    """The command line's defaults: offline, and only tunesmith's own messages."""
    offline_defaults()
    # On AVX512-BF16 CPUs, importing bitsandbytes asks the kernels package for a Hub CPU kernel: both announce that
    # offline they cannot have it; bitsandbytes' own fallback works.
    for name in ("bitsandbytes.backends.cpu.ops", "kernels"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
