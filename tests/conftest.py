"""Shared fixtures: repository paths, a CLI runner, PostgreSQL DSN handling."""

from __future__ import annotations

import os
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


def postgres_dsn() -> str | None:
    """The test server's DSN; under CI=true an unreachable server is a failure, not a skip."""
    dsn = os.environ.get("SAGALANG_TEST_POSTGRES_DSN")
    if not dsn:
        if os.environ.get("CI") == "true":
            pytest.fail("SAGALANG_TEST_POSTGRES_DSN is not set under CI=true")
        pytest.skip("SAGALANG_TEST_POSTGRES_DSN is not set")
    return dsn
