"""lever_ab.py's command line: which lever the 'on' runs get. No runs (benchmarks/results/ holds those)."""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "_bench_lever_ab", Path(__file__).resolve().parents[3] / "benchmarks" / "llm" / "lever_ab.py")
bench = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_an_environment_setting_is_a_lever():
    args = bench.parse_args(["--env", "THP_MEM_ALLOC_ENABLE=1", "--env", "GLIBC_TUNABLES=a=b:c=d"])
    assert args.env == ["THP_MEM_ALLOC_ENABLE=1", "GLIBC_TUNABLES=a=b:c=d"]
    assert dict(setting.split("=", 1) for setting in args.env)["GLIBC_TUNABLES"] == "a=b:c=d"


@pytest.mark.parametrize("argv, message", [([], "name the lever"), (["--env", "NOVALUE"], "expected NAME=VALUE"),
                                           (["--env", "=1"], "expected NAME=VALUE")])
def test_a_missing_or_malformed_lever_is_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err
