"""Data preparation: check, repair and clean, deduplicate, redact personal data, split, report.

`prepare(inputs, settings, out)` runs every step (pipeline.py); `check_file` only validates (check.py).
"""

from tunesmith.data.prepare.check import CheckResult, check_file
from tunesmith.data.prepare.pipeline import Input, Prepared, prepare

__all__ = ["CheckResult", "Input", "Prepared", "check_file", "prepare"]
