"""SQLite sessions: readers take no write lock and may not write; writers take turns at the process's gate, which
opens again however their transaction ends."""

import gc
import threading

import pytest
from sqlalchemy import select

from tunesmith.serve.db import make_engine, read_session_factory, session_factory
from tunesmith.serve.tables import Tenant


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path / 'test.db'}")


def writer_begins(engine, within: float = 60) -> bool:
    """Whether another thread's write transaction begins within `within` seconds (at once when nothing holds the
    gate; asked with a short wait only to show that one is held)."""
    began = []

    def attempt():
        with session_factory(engine)() as session:
            session.execute(select(Tenant))  # BEGIN IMMEDIATE behind the gate
            began.append(True)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=within)
    return bool(began)


def test_a_write_transaction_holds_the_gate_until_it_ends(engine):
    writers = session_factory(engine)
    holding = writers()
    holding.execute(select(Tenant))
    assert not writer_begins(engine, within=1)
    holding.commit()
    assert writer_begins(engine)


@pytest.mark.parametrize("ending", ["commit", "rollback", "close", "close on another thread", "dropped unclosed"])
def test_the_gate_opens_however_the_transaction_ends(engine, ending):
    session = session_factory(engine)()
    session.add(Tenant(id="org-1", name="acme", created_at=1))
    session.flush()
    if ending == "close on another thread":  # FastAPI may end a session on another thread than it began
        closer = threading.Thread(target=session.close)
        closer.start()
        closer.join()
    elif ending == "dropped unclosed":
        del session
        gc.collect()
    else:
        getattr(session, ending)()
    assert writer_begins(engine)


def test_readers_leave_the_gate_open_and_may_not_write(engine):
    reader = read_session_factory(engine)()
    reader.execute(select(Tenant))
    assert writer_begins(engine)
    reader.add(Tenant(id="org-2", name="globex", created_at=1))
    with pytest.raises(RuntimeError, match="a read-only session tried to write"):
        reader.flush()
    reader.close()
