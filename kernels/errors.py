"""The warnings every layer of pixelrun shares, and where they point.

Defined here, in the lowest layer, so the SDK, the engine and the kernels can all
subclass them: every warning pixelrun emits is a `PixelrunWarning`, so one filter
(``warnings.simplefilter("error", pixelrun.PixelrunWarning)``) catches all of them.
``pixelrun.PixelrunWarning`` and ``pixelrun.engine.RenderWarning`` are these classes.
"""

from __future__ import annotations

import sys

__all__ = ["PixelrunWarning", "RenderWarning", "NotDrawnWarning", "user_stacklevel"]


class PixelrunWarning(UserWarning):
    """Something pixelrun must tell the user without stopping: bad input that was
    dropped (the message names the entity and the reason), damaged data that was read
    in part, or something about where the data goes."""


class RenderWarning(PixelrunWarning):
    """An image was left out of a rendered picture; the message names the entity and
    the reason. Everything else is still drawn."""


class NotDrawnWarning(RenderWarning):
    """An entity holds only archetypes this version does not draw (named once per
    recording). Nothing is wrong with the data, so the CLI does not count it as a problem."""


def _is_pixelrun(frame) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == "pixelrun" or name.startswith("pixelrun.")


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` in the function that calls this, so
    the warning points at the first frame outside pixelrun (the user's line).

    Frames are told apart by their module's name (``pixelrun`` and ``pixelrun.*``), not
    their folder, so this holds for every layer and any install layout.
    """
    f = sys._getframe(2)  # the caller of the function that asks
    level = 2
    while f is not None and _is_pixelrun(f):
        f = f.f_back
        level += 1
    return level
