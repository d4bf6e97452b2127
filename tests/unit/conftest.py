from __future__ import annotations

import pytest

from tests.support.guest import find_interpreters


@pytest.fixture(scope="session")
def interpreters() -> dict[str, str]:
    """The Python 3.9-3.13 interpreters on this machine, by version."""
    return find_interpreters()
