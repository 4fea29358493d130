"""pixelrun.engine: chunk schema, .rrd codec, store, scene building, renderers, CLI.

The public surface is small::

    from pixelrun.engine import open_store, render
    rgba = render("rec.rrd", timeline="step", time=19)   # (H, W, 4) uint8 RGBA
    store = open_store("rec.rrd")                         # open once, render many times
    render_video(store, "clip.mp4", timeline="step")      # every time point as H.264 (pixelrun[video])

Never imports the SDK (`pixelrun` top level); depends on pixelrun.kernels only.
"""

from pixelrun.engine.api import NotAnRrdFileError, NotFoundError, open_store, render, time_points
from pixelrun.engine.video import VideoInfo, VideoOutputError, render_video
from pixelrun.kernels.errors import PixelrunWarning, RenderWarning

__all__ = [
    "render", "open_store", "time_points", "NotFoundError", "NotAnRrdFileError",
    "RenderWarning", "PixelrunWarning", "render_video", "VideoInfo", "VideoOutputError",
]
