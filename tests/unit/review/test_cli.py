"""`tunesmith review` on the command line: clear errors, the tally without a server, the port check."""

import socket

import pytest
from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.errors import TunesmithError
from tunesmith.review.serve import bind

from .test_items import example, write_examples
from .test_summary import cast


def invoke(*args):
    return CliRunner().invoke(app, ["review", *map(str, args)])


def test_a_folder_without_answers_is_one_clear_error(tmp_path):
    result = invoke(tmp_path)
    assert isinstance(result.exception, TunesmithError)
    assert f"looked for {tmp_path}/eval/examples.jsonl and {tmp_path}/report.json" in str(result.exception)
    assert f"run `tunesmith eval {tmp_path}`" in str(result.exception)


def test_a_missing_folder_is_named(tmp_path):
    result = invoke(tmp_path / "nope")
    assert str(result.exception) == f"{tmp_path / 'nope'}: not a folder (pass the output_dir of a run)"


def test_tally_prints_the_headline_and_writes_the_summary(tmp_path):
    write_examples(tmp_path, [example(i, zero_shot=f"z{i}", tuned=f"t{i}") for i in range(3)])
    cast(tmp_path, [(0, "Ana", "tuned"), (1, "Ana", "tie")], against="zero_shot")
    result = invoke(tmp_path, "--tally")
    assert result.exit_code == 0, result.output
    assert "tuned vs zero_shot: tuned preferred on 75% of 2 reviewed items" in result.output
    assert (tmp_path / "review" / "summary.json").is_file() and (tmp_path / "review" / "report.md").is_file()


def test_a_busy_port_says_how_to_get_a_free_one():
    taken = bind(0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(TunesmithError, match=f"--port {port}: cannot listen on 127.0.0.1:{port} .*--port 0"):
            bind(port)
    finally:
        taken.close()


def test_port_zero_listens_on_loopback_only():
    sock = bind(0)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        socket.create_connection((host, port), timeout=5).close()
    finally:
        sock.close()
