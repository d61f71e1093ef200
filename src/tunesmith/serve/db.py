"""The database engine: SQLite under --home by default, any SQLAlchemy URL (PostgreSQL to scale out) otherwise.

Several processes write one SQLite file (the server, workers, each job's runner), so SQLite runs in WAL mode,
waits for locks instead of failing, and a transaction that may write takes the write lock when it begins: one that
read and then wrote could otherwise fail outright when another process wrote in between. Sessions that only read
(`read_session_factory`: most API requests) begin deferred instead: in WAL mode they read a snapshot without
waiting for writers or making them wait.

Within one process, writers also take turns on a gate of their own before asking SQLite for its write lock.
SQLite's busy handler polls, sleeping up to 100 ms between tries, so under load (a server answering dozens of
requests at once) a waiting writer could lose every race until it timed out, while the lock's holder, short of the
GIL among the other busy threads, kept it for seconds. Waiting at the gate costs no CPU and wakes writers in turn;
SQLite's own waiting then only arbitrates between processes.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.db_urls import masked, with_driver
from tunesmith.errors import ConfigError
from tunesmith.serve.tables import Base

SQLITE_BUSY_TIMEOUT_S = 60
READ_ONLY = "tunesmith_read_only"  # the execution option that marks a read-only session's connections
# A server runs up to 40 requests at once (Starlette's thread pool), each holding one connection while it works,
# beside its worker's; SQLAlchemy's default pool of 5 + 10 made the rest wait and time out under load.
POOL = {"pool_size": 10, "max_overflow": 40}
DB_EXAMPLES = "sqlite:////srv/tunesmith/tunesmith.db or postgresql://USER:PASSWORD@HOST/DATABASE"
POSTGRES_INSTALL = "; install it with: pip install 'tunesmith[postgres]'"


def make_engine(url: str) -> Engine:
    """The engine for `--db url`, its tables created; ConfigError naming --db (password masked) and what is wrong
    when the URL cannot be read, its driver is missing or the database cannot be reached."""
    try:
        engine = _engine(with_driver(url))
        Base.metadata.create_all(engine)
    except NoSuchModuleError:  # before ArgumentError, its base class
        raise ConfigError(f"--db {masked(url)}: SQLAlchemy knows no database of that kind; expected e.g. "
                          f"{DB_EXAMPLES}") from None
    except (ArgumentError, ValueError):  # ValueError: a part SQLAlchemy cannot read, such as a port
        raise ConfigError(f"--db {masked(url)}: not a database URL; expected e.g. {DB_EXAMPLES}") from None
    except ImportError as error:  # the dialect is known but its driver is not installed
        raise ConfigError(f"--db {masked(url)}: its driver ({error.name}) is not installed"
                          f"{POSTGRES_INSTALL if error.name == 'psycopg' else ''}") from None
    except DBAPIError as error:
        raise ConfigError(f"--db {masked(url)}: cannot open the database: {_reason(error, url)}") from None
    return engine


def _reason(error: DBAPIError, url: str) -> str:
    """The driver's own words on one line, without the password in case it repeats the URL."""
    reason = "; ".join(line.strip() for line in str(error.orig).splitlines() if line.strip())
    password = _password(url)
    return reason.replace(password, "***") if password else reason


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, **POOL)
        transactions = _SqliteTransactions()
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", transactions.begin)
        event.listen(engine, "commit", transactions.end)
        event.listen(engine, "rollback", transactions.end)
        event.listen(engine, "checkin", transactions.returned)
    else:
        engine = create_engine(url, pool_pre_ping=True, **POOL)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: handlers build their responses from rows they have just written.
    return sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests that only read; one that tries to write is refused."""
    readers = sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)
    event.listen(readers, "before_flush", _refuse_writes)
    return readers


def _refuse_writes(session: Session, _context, _instances) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a read-only session tried to write; use a session from session_factory")


def now() -> int:
    return int(time.time())


class _SqliteTransactions:
    """BEGIN for SQLite: deferred for readers; BEGIN IMMEDIATE for writers, one at a time per process."""

    GATED = "tunesmith_gated"  # in a connection's info while its transaction holds the gate

    def __init__(self):
        # A semaphore, not a lock: a transaction may end on another thread than it began (FastAPI closes a route's
        # session where it likes).
        self.gate = threading.BoundedSemaphore(1)

    def begin(self, conn) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        if not self.gate.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise TimeoutError(f"no turn to write to the database in {SQLITE_BUSY_TIMEOUT_S} s")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.gate.release()
            raise
        conn.info[self.GATED] = True

    def end(self, conn) -> None:
        if conn.info.pop(self.GATED, False):
            self.gate.release()

    def returned(self, _dbapi_connection, record) -> None:
        """A connection back in the pool with its transaction never ended (its session was dropped unclosed): the
        pool rolled it back, and the gate opens too."""
        if record is not None and record.info.pop(self.GATED, False):
            self.gate.release()


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN IMMEDIATE itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
