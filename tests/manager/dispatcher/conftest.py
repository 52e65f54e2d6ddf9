from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.manager.dispatcher.loopback import Manager


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[Manager]:
    """A cluster's manager port served on loopback (see `Manager`)."""
    manager = await Manager.create(tmp_path)
    await manager.start()
    yield manager
    await manager.stop()
