"""`tunesmith.__all__` is the public surface: every name resolves, and `import tunesmith` stays cheap."""

import subprocess
import sys

import tunesmith


def test_every_public_name_resolves():
    for name in tunesmith.__all__:
        assert getattr(tunesmith, name) is not None, name


def test_importing_tunesmith_loads_no_torch():
    code = "import sys, tunesmith; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
