"""`tunesmith.__all__` is the public surface: every name resolves, and `import tunesmith` stays cheap, as do the
job server and the config schema (a server, `tunesmith keys` or a config check does not wait for torch to load)."""

import subprocess
import sys

import tunesmith


def test_every_public_name_resolves():
    for name in tunesmith.__all__:
        assert getattr(tunesmith, name) is not None, name


def test_importing_tunesmith_loads_no_torch():
    code = "import sys, tunesmith; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_the_job_server_and_the_config_schema_load_no_torch():
    code = "import sys, tunesmith.serve.app, tunesmith.config.schema; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
