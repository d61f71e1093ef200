"""A --db the service cannot open: one line naming --db and what is wrong, the password masked, no traceback."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each case starts the CLI in its own process, as a user would

UNREACHABLE = "postgresql://tuner:s3cretpw@127.0.0.1:1/tunesmith"  # port 1: nothing listens there


# Each kind of failure once, across the three commands that open the database (a process costs seconds).
@pytest.mark.parametrize(("command", "url", "reason"), [
    (["keys", "list"], "notaurl", "not a database URL; expected e.g. sqlite:///"),
    (["keys", "create", "--tenant", "acme"], "nosuchdb://tuner:s3cretpw@host/x",
     "SQLAlchemy knows no database of that kind"),
    (["worker"], "mysql://tuner:s3cretpw@host/x", "its driver (MySQLdb) is not installed"),
    (["serve", "--no-worker", "--port", "1"], UNREACHABLE, "cannot open the database: connection failed"),
], ids=["unparsable", "unknown-kind", "no-driver", "unreachable"])
def test_a_bad_db_url_gets_one_clear_line(tmp_path, command, url, reason):
    if url.startswith("postgresql"):
        pytest.importorskip("psycopg")
    done = subprocess.run([sys.executable, "-m", "tunesmith", *command, "--home", str(tmp_path), "--db", url],
                          capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and "s3cretpw" not in output
    error = output.strip().splitlines()[-1]
    shown = url.replace("s3cretpw", "***")
    assert error.startswith(f"error: --db {shown}: {reason}"), output
