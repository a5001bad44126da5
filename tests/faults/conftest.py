"""Fixtures of the fault tests: an SMTP fault sink process and a throwaway PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.pg_cluster import PgCluster, cluster_or_skip
from tests.faults.sink import FaultSink


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[FaultSink]:
    """An SMTP fault sink in its own process, accepting until told otherwise."""
    with FaultSink(tmp_path / "sink") as running:
        yield running


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this test's own, started; removed afterwards."""
    cluster = cluster_or_skip()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "serve.log"
    yield path
    if path.exists():  # visible with -rA or on failure: what the servers said on stderr
        print(path.read_text()[-4000:])
