"""MCAP files and ROS 2 bags: images of ``sensor_msgs`` and Foxglove messages in the store.

- reader.py: the file's index and chunks -> image rows -> store chunks (Rerun 0.41's
  naming: entity = topic, ``message_log_time`` / ``message_publish_time`` /
  ``ros2_timestamp`` / ``timestamp`` timelines); damage counted per topic.
- messages.py: ROS 2 CDR, Foxglove protobuf and JSON image messages as one record.
- ros_image.py: REP 104 encodings -> the format table (kernels/formats.py).
- summary.py: what ``pixelrun info`` prints, from the summary section alone.
- db3.py: rosbag2's SQLite storage (``.db3``), through Python's sqlite3.

The readers (``mcap``, ``mcap-ros2-support``, ``mcap-protobuf-support``, ``zstandard``,
``lz4``) are the ``pixelrun[mcap]`` extra, imported only when a file is read.
"""

from pixelrun.engine.mcap.reader import (
    FOXGLOVE_STAMP,
    LOG_TIME,
    MCAP_MAGIC,
    PUBLISH_TIME,
    ROS2_STAMP,
    McapReport,
    McapSource,
    is_bag,
    is_mcap,
    iter_chunks,
    iter_image_rows,
    read_mcap,
    store_info_for,
)

__all__ = [
    "FOXGLOVE_STAMP",
    "LOG_TIME",
    "MCAP_MAGIC",
    "PUBLISH_TIME",
    "ROS2_STAMP",
    "McapReport",
    "McapSource",
    "is_bag",
    "is_mcap",
    "iter_chunks",
    "iter_image_rows",
    "read_mcap",
    "store_info_for",
]
