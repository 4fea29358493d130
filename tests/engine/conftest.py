"""Fixtures shared by tests/engine/'s modules.

`ray_local`: one local Ray for the fleet tests (tests/engine/test_fleet*.py), started by
the engine's own `connect` (what ``pixelrun render --ray`` uses), so the modules share
one Ray for the session instead of each writing its own start-up.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for these tests: 2 CPUs, no dashboard, no progress bars, shut down at
    the end of the session. A Ray started by someone else is used and left running."""
    ray = pytest.importorskip("ray", reason="Ray (the pixelrun[ray] extra) is not installed")
    from pixelrun.engine.fleet import cluster  # imports ray: only where a test asks for Ray

    started = cluster.connect(None, 2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
