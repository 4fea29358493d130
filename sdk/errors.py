"""How the SDK reports bad input: a warning by default, ValueError in strict mode.

Rerun's rule, kept here: logging must never crash or stall the caller's loop, so bad
data produces a `PixelrunWarning` naming the entity and the reason, and the row is
dropped. Strict mode (``init(strict=True)`` or ``PIXELRUN_STRICT=1``) turns the same
messages into ``ValueError`` for tests and CI.

`PixelrunWarning` (the base of every warning pixelrun emits) and `user_stacklevel` live
in pixelrun.kernels.errors, the lowest layer, so the engine and kernels share them.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

from pixelrun.kernels.errors import PixelrunWarning, user_stacklevel

__all__ = [
    "PixelrunWarning", "DataLossWarning", "RecordingClosedWarning", "RerunCompatibilityWarning", "PixelrunSaveError",
    "is_strict", "set_strict_mode", "report", "user_stacklevel",
]


class DataLossWarning(PixelrunWarning):
    """Data was dropped or could not be written; the message says where, why and how
    much (counts also in ``RecordingStream.dropped_rows`` / ``dropped_chunks``)."""


class RecordingClosedWarning(DataLossWarning):
    """Something was logged to a recording after ``close()``: dropped and counted."""


class RerunCompatibilityWarning(PixelrunWarning):
    """A row uses something only pixelrun reads (one of pixelrun's own pixel formats):
    it is logged and pixelrun shows it; the message names the entity, the format and
    what Rerun 0.41 does with it. Said once per entity and format."""


class PixelrunSaveError(OSError):
    """The recording cannot be written to the requested file (the message names the
    path and the reason)."""


_strict: Optional[bool] = None  # None: follow PIXELRUN_STRICT


def set_strict_mode(strict: Optional[bool]) -> None:
    """Raise ValueError instead of warning (None: follow ``PIXELRUN_STRICT``)."""
    global _strict
    _strict = strict


def is_strict() -> bool:
    """Whether bad input raises (strict) or warns and drops the row."""
    if _strict is not None:
        return _strict
    return os.environ.get("PIXELRUN_STRICT", "").strip().lower() in ("1", "true", "yes", "on")


def report(message: str) -> None:
    """Raise ValueError (strict) or emit a PixelrunWarning with `message`."""
    if is_strict():
        raise ValueError(message)
    warnings.warn(message, PixelrunWarning, stacklevel=user_stacklevel())
