"""The command line's defaults: offline, and no library's notices on the terminal."""

import logging
import os

import pytest

from tunesmith import offline

# On an AVX512-BF16 CPU, importing bitsandbytes asks the kernels package for a Hub kernel, and both log why they
# could not fetch it offline: "Skipping publisher trust check ..." and "Failed to load CPU gemm_4bit_forward ...".
NOTICES = ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub")
SET = ("bitsandbytes.backends.cpu.ops", "kernels")  # the loggers configure() sets


@pytest.fixture
def fresh_defaults(monkeypatch):
    """No offline variables and the loggers at their defaults; afterwards, as they were."""
    from transformers.utils import logging as hf_logging

    for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "TOKENIZERS_PARALLELISM"):
        monkeypatch.delenv(name, raising=False)
    levels, verbosity = {name: logging.getLogger(name).level for name in SET}, hf_logging.get_verbosity()
    progress_bar = hf_logging.is_progress_bar_enabled()
    for name in SET:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    hf_logging.set_verbosity(verbosity)
    (hf_logging.enable_progress_bar if progress_bar else hf_logging.disable_progress_bar)()


def test_the_cli_is_offline_and_hides_the_hub_kernel_notices(fresh_defaults):
    assert all(logging.getLogger(name).isEnabledFor(logging.WARNING) for name in NOTICES)
    offline.configure()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert not any(logging.getLogger(name).isEnabledFor(logging.WARNING) for name in NOTICES)
    assert all(logging.getLogger(name).isEnabledFor(logging.ERROR) for name in NOTICES)  # errors still show


def test_a_users_environment_wins(fresh_defaults, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    offline.offline_defaults()
    assert os.environ["HF_HUB_OFFLINE"] == "0"
