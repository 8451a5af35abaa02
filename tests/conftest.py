"""Shared fixtures: repository paths, a CLI runner, PostgreSQL DSN handling."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
EXAMPLES = SPECS / "examples"


@pytest.fixture
def runner() -> CliRunner:
    """A click runner for the sagalang CLI."""
    return CliRunner()


@pytest.fixture
def repo_root() -> Path:
    """The repository root."""
    return ROOT


_PG_REACHABLE: dict[str, str | None] = {}  # dsn -> None if reachable, else why not


def _postgres_problem(dsn: str) -> str | None:
    if dsn not in _PG_REACHABLE:
        try:
            import psycopg

            with psycopg.connect(dsn, connect_timeout=5, application_name="pytest-sagalang") as conn:
                conn.execute("SELECT 1")
            _PG_REACHABLE[dsn] = None
        except Exception as err:  # ImportError or any connection failure
            _PG_REACHABLE[dsn] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return _PG_REACHABLE[dsn]


def postgres_dsn() -> str:
    """The test server's DSN; under CI=true a missing or unreachable server is a failure, not a skip."""
    ci = os.environ.get("CI") == "true"
    dsn = os.environ.get("SAGALANG_TEST_POSTGRES_DSN")
    if not dsn:
        if ci:
            pytest.fail("SAGALANG_TEST_POSTGRES_DSN is not set under CI=true")
        pytest.skip("SAGALANG_TEST_POSTGRES_DSN is not set")
    problem = _postgres_problem(dsn)
    if problem is not None:
        if ci:
            pytest.fail(f"PostgreSQL at SAGALANG_TEST_POSTGRES_DSN is unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL at SAGALANG_TEST_POSTGRES_DSN is unreachable: {problem}")
    return dsn


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``options=-csearch_path=SCHEMA`` added (URL form), so each test gets its own tables."""
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A ``postgresql://`` store URL whose tables live in a fresh schema, dropped afterwards."""
    import uuid

    import psycopg

    dsn = postgres_dsn()
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True, application_name="pytest-sagalang") as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True, application_name="pytest-sagalang") as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
