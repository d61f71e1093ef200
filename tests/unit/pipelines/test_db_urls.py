"""Database URLs: plain PostgreSQL URLs open with psycopg 3 (the driver tunesmith installs), others stay as given, and
a password never reaches the terminal."""

import pytest

from tunesmith.db_urls import masked, with_driver


@pytest.mark.parametrize(("given", "opened"), [
    ("postgresql://ana@db.local/tunesmith", "postgresql+psycopg://ana@db.local/tunesmith"),
    ("postgres://ana:pw@db.local:5433/t", "postgresql+psycopg://ana:pw@db.local:5433/t"),
    ("postgresql+psycopg2://ana@db.local/t", "postgresql+psycopg2://ana@db.local/t"),  # a driver named: kept
    ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
    ("mysql://ana@db.local/t", "mysql://ana@db.local/t"),
])
def test_plain_postgres_urls_name_psycopg_3(given, opened):
    assert with_driver(given) == opened


def test_the_password_is_masked_also_in_a_url_sqlalchemy_cannot_parse():
    assert masked("postgresql://ana:s3cret@db.local/t") == "postgresql://ana:***@db.local/t"
    assert masked("sqlite:///study.db") == "sqlite:///study.db"
    assert masked("not a url") == "not a url"
    assert masked("postgresql://ana:s3cret@db.local:port/t") == "postgresql://ana:***@db.local:port/t"
