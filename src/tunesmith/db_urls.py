"""Database URLs as users write them (`--storage`, `--db`) and as SQLAlchemy opens and prints them; shared by the
sweep's Optuna storage and the service's database."""

from __future__ import annotations

import re

PLAIN_POSTGRES = ("postgresql://", "postgres://")
PSYCOPG = "postgresql+psycopg://"


def with_driver(url: str) -> str:
    """`postgresql://` (or `postgres://`) means psycopg 3: SQLAlchemy's default driver for it is psycopg2, which
    tunesmith does not install. Other URLs, and ones naming their driver, are returned as given."""
    for plain in PLAIN_POSTGRES:
        if url.startswith(plain):
            return PSYCOPG + url[len(plain):]
    return url


# user:password@ after the scheme, for URLs SQLAlchemy cannot parse (a bad port, say): still no password shown.
_CREDENTIALS = re.compile(r"(://[^:/@]*:)[^@]*@")


def masked(url: str) -> str:
    """The URL with its password masked, for terminals and files, also when SQLAlchemy cannot parse it (opening it
    reports that error)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _CREDENTIALS.sub(r"\1***@", url)
