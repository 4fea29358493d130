"""pixelrun.data: recordings as Ray Data datasets (``pip install 'pixelrun[ray]'``).

    import pixelrun.data
    ds = pixelrun.data.read_rrd("fleet/")                  # one row per logged image, with its rgba
    raw = pixelrun.data.read_rrd("fleet/", decode=False)   # raw buffers + format fields
    ds = pixelrun.data.decode(raw)                         # the decode as its own stage (on GPUs where there are)
    bags = pixelrun.data.read_mcap("bags/", topics=["/cam/left"])  # MCAP / rosbag2 bags: the same rows

The same functions as ``pixelrun.engine.fleet`` (engine/fleet/__init__.py documents them);
Ray is imported only when a dataset is made.
"""

from pixelrun.engine.fleet import (
    DECODED_COLUMNS,
    RAW_COLUMNS,
    Decoder,
    FleetWarning,
    RecordingReadError,
    decode,
    decode_batch,
    read_mcap,
    read_rrd,
)

__all__ = [
    "read_rrd", "read_mcap", "decode", "decode_batch", "Decoder", "FleetWarning", "RecordingReadError",
    "RAW_COLUMNS", "DECODED_COLUMNS",
]
