from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import RunningServer, squall_process


@pytest.fixture(scope="session")
def squall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One `squall server` subprocess shared by the session, started as the README says."""
    data_dir: Path = tmp_path_factory.mktemp("squall-data")
    with squall_process(data_dir) as server:
        yield server


@pytest.fixture(scope="session")
def endpoint(squall: RunningServer) -> str:
    return squall.endpoint
