"""The database engine: SQLite under --home by default, any SQLAlchemy URL (PostgreSQL to scale out) otherwise.

Several processes write one SQLite file (the server, workers, each job's runner), so SQLite runs in WAL mode,
waits for locks instead of failing, and takes the write lock when a transaction begins: a transaction that
reads and then writes could otherwise fail outright when another process wrote in between.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.serve.tables import Base

SQLITE_BUSY_TIMEOUT_S = 60


def make_engine(url: str) -> Engine:
    url = _with_driver(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    else:
        engine = create_engine(url, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: handlers build their responses from rows they have just written.
    return sessionmaker(engine, expire_on_commit=False)


def now() -> int:
    return int(time.time())


def _with_driver(url: str) -> str:
    """`postgresql://` means psycopg 3 (SQLAlchemy's default would be psycopg2, which we do not install)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN IMMEDIATE itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
