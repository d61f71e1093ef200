"""`tunesmith keys`: a key is printed once, alone on the last line; the database holds only its hash."""

from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.serve.db import make_engine, session_factory
from tunesmith.serve.keys import find_caller, hash_key


def keys(*args, home):
    result = CliRunner().invoke(app, ["keys", *args, "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.output


def test_create_prints_the_key_alone_on_the_last_line_and_stores_only_its_hash(tmp_path):
    output = keys("create", "--tenant", "acme", home=tmp_path)
    key = output.strip().splitlines()[-1]
    assert key.startswith("ts-") and " " not in key and len(key) > 40
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("tunesmith.db*"))
    assert key.encode() not in stored and hash_key(key).encode() in stored
    with session_factory(make_engine(f"sqlite:///{tmp_path / 'tunesmith.db'}"))() as session:
        caller = find_caller(session, key)
    assert caller.tenant_name == "acme" and not caller.admin


def test_list_shows_ids_never_keys_and_revoke_ends_a_key(tmp_path):
    key = keys("create", "--tenant", "acme", "--admin", home=tmp_path).strip().splitlines()[-1]
    listed = keys("list", home=tmp_path)
    key_id, tenant, role, state = listed.split()
    assert (tenant, role, state) == ("acme", "admin", "active") and key not in listed
    keys("revoke", key_id, home=tmp_path)
    assert keys("list", home=tmp_path).split()[-1] == "revoked"
    with session_factory(make_engine(f"sqlite:///{tmp_path / 'tunesmith.db'}"))() as session:
        assert find_caller(session, key) is None


def test_a_tenant_name_that_is_not_a_plain_name_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["keys", "create", "--tenant", "a:b", "--home", str(tmp_path)])
    assert result.exit_code != 0
    assert "--tenant 'a:b': use letters, digits" in str(result.exception)
