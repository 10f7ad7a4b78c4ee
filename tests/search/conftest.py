"""The search tests' fixtures: one PostgreSQL server for the session (tests/search/postgres.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.search.postgres import Server, throwaway_server

_DATABASES = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    with throwaway_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Server) -> str:
    """A fresh database of its own for each test, on the session's server."""
    return postgres_server.create_database(f"test{next(_DATABASES)}")
