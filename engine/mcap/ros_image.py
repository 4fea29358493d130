"""ROS image encodings (REP 104, ``sensor_msgs/image_encodings.h``) -> the format table.

`map_raw_image` turns one raw image message's fields (encoding, width, height, step,
is_bigendian, data) into what the store holds: an Image or a DepthImage whose
`ImageFormat` the kernels decode (kernels/formats.py). The bytes go on as they are
(a view of the message, never repacked); a layout the format table cannot express yet
raises `NotShown` with the reason, so the message is named and counted rather than
drawn with wrong pixels.

Depth follows REP 118 and Rerun 0.41: ``16UC1`` is millimetres (DepthImage, meter
1000) and ``32FC1`` is metres (meter 1). ``mono8``/``mono16`` are intensity images and
stay grey Images. YUV encodings are BT.601 limited range, like Rerun's NV12 and YUY2
(``yuv422`` is UYVY byte order, ``yuv422_yuy2`` YUYV). Padded rows (``step`` > a
row) travel as the format's row stride and ``is_bigendian`` as its byte order
(ImageFormat.row_stride / big_endian), which every backend honours; a big-endian
16-bit Bayer mosaic is the one layout still refused.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Optional

from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    PixelFormat,
)

__all__ = ["NotShown", "RosImage", "map_raw_image", "ros_encoding_format", "ENCODINGS"]


class NotShown(ValueError):
    """A raw image that cannot be drawn exactly (the message says why)."""


@dataclass(frozen=True)
class RosImage:
    """One raw image message as the store keeps it.

    kind: "image" or "depth"; meter: DepthImage's units per metre (depth only);
    data: exactly ``format.byte_count()`` bytes, a view of the message.
    """

    kind: str
    format: ImageFormat
    data: memoryview
    meter: Optional[float] = None


_CV = re.compile(r"^(8|16|32|64)([USF])C([1-4])$")
_CV_TYPES = {
    ("8", "U"): ChannelDatatype.U8, ("8", "S"): ChannelDatatype.I8,
    ("16", "U"): ChannelDatatype.U16, ("16", "S"): ChannelDatatype.I16,
    ("32", "S"): ChannelDatatype.I32, ("32", "F"): ChannelDatatype.F32,
    ("64", "F"): ChannelDatatype.F64,
}
# OpenCV-style channel counts -> colour model: OpenCV's BGR order, as cv_bridge's viewers
# and Rerun 0.41 (8UC3 -> BGR) read them; 2 channels have no colour model
_CV_MODELS = {1: ColorModel.L, 3: ColorModel.BGR, 4: ColorModel.BGRA}

# Named encodings of colour and intensity images: (colour model, datatype)
_NAMED = {
    "rgb8": (ColorModel.RGB, ChannelDatatype.U8),
    "rgba8": (ColorModel.RGBA, ChannelDatatype.U8),
    "bgr8": (ColorModel.BGR, ChannelDatatype.U8),
    "bgra8": (ColorModel.BGRA, ChannelDatatype.U8),
    "rgb16": (ColorModel.RGB, ChannelDatatype.U16),
    "rgba16": (ColorModel.RGBA, ChannelDatatype.U16),
    "bgr16": (ColorModel.BGR, ChannelDatatype.U16),
    "bgra16": (ColorModel.BGRA, ChannelDatatype.U16),
    "mono8": (ColorModel.L, ChannelDatatype.U8),
    "mono16": (ColorModel.L, ChannelDatatype.U16),
}

# Special layouts: encoding -> pixel format (only those the format table holds)
_PIXEL = {
    "nv12": PixelFormat.NV12,
    "yuv422_yuy2": PixelFormat.YUY2,
    "yuyv": PixelFormat.YUY2,  # Foxglove's name
    "yuv422": PixelFormat.UYVY,  # REP 104's yuv422 is UYVY byte order
    "uyvy": PixelFormat.UYVY,  # Foxglove's name
    "nv21": PixelFormat.NV21,
    "i420": PixelFormat.I420,
    "bayer_rggb8": PixelFormat.BayerRGGB8,
    "bayer_bggr8": PixelFormat.BayerBGGR8,
    "bayer_gbrg8": PixelFormat.BayerGBRG8,
    "bayer_grbg8": PixelFormat.BayerGRBG8,
    "bayer_rggb16": PixelFormat.BayerRGGB16,
    "bayer_bggr16": PixelFormat.BayerBGGR16,
    "bayer_gbrg16": PixelFormat.BayerGBRG16,
    "bayer_grbg16": PixelFormat.BayerGRBG16,
}

# REP 118 depth: encoding -> units per metre
_DEPTH = {"16UC1": 1000.0, "32FC1": 1.0}


ENCODINGS = tuple(sorted({*_NAMED, *_PIXEL, *_DEPTH})) + tuple(
    f"{b}{k}C{c}" for (b, k) in _CV_TYPES for c in (1, 2, 3, 4)
)


def ros_encoding_format(encoding: str, width: int, height: int) -> tuple[str, ImageFormat, Optional[float]]:
    """(kind, tight ImageFormat, meter) for an encoding; NotShown for one the table lacks."""
    enc = encoding.strip()
    if enc in _DEPTH:
        dt = ChannelDatatype.U16 if enc == "16UC1" else ChannelDatatype.F32
        return "depth", ImageFormat(width, height, channel_datatype=dt), _DEPTH[enc]
    low = enc.lower()
    if low in _NAMED:
        model, dt = _NAMED[low]
        return "image", ImageFormat(width, height, color_model=model, channel_datatype=dt), None
    if low in _PIXEL:
        return "image", ImageFormat(width, height, pixel_format=_PIXEL[low]), None
    m = _CV.match(enc.upper())
    if m:
        bits, kind, channels = m.group(1), m.group(2), int(m.group(3))
        dt = _CV_TYPES.get((bits, kind))
        if dt is None:
            raise NotShown(f"encoding {encoding!r}: {bits}-bit {'unsigned' if kind == 'U' else 'float'} samples "
                           "are not a ROS image type")
        model = _CV_MODELS.get(channels)
        if model is None:
            raise NotShown(f"encoding {encoding!r}: 2-channel images have no colour model to show them with")
        return "image", ImageFormat(width, height, color_model=model, channel_datatype=dt), None
    raise NotShown(f"unknown encoding {encoding!r} (expected one of REP 104's: rgb8, bgr8, mono8, mono16, "
                   "16UC1, 32FC1, nv12, yuv422, yuv422_yuy2, bayer_rggb8, ...)")


def _row_bytes(fmt: ImageFormat) -> int:
    """Bytes of one tight row of the first plane."""
    if fmt.pixel_format is not None:
        return PIXEL_FORMATS[fmt.pixel_format].tight_row_bytes(fmt.width)
    return fmt.width * COLOR_MODELS[fmt.model].channels * DATATYPES[fmt.datatype].size


def sample_bytes(fmt: ImageFormat) -> int:
    """Bytes of one sample (what byte order applies to)."""
    if fmt.pixel_format is not None:
        return PIXEL_FORMATS[fmt.pixel_format].sample_bytes
    return DATATYPES[fmt.datatype].size


def map_raw_image(encoding: str, width: int, height: int, step: int, is_bigendian: bool, data) -> RosImage:
    """One raw image message -> RosImage; NotShown (a ValueError) says why it cannot be drawn.

    `step` is the bytes per row of the first plane (ROS's meaning); `data` is any
    bytes-like object and is sliced, not copied.
    """
    if width <= 0 or height <= 0:
        raise NotShown(f"a {width}x{height} image has no pixels")
    kind, fmt, meter = ros_encoding_format(encoding, width, height)
    row = _row_bytes(fmt)
    if step < row:
        raise NotShown(f"step {step} is smaller than one row of {fmt.describe()} ({row} bytes)")
    size = sample_bytes(fmt)
    if is_bigendian and size > 1:
        if fmt.pixel_format is not None:
            raise NotShown(f"big-endian {size}-byte samples ({encoding}) are not in the format table yet")
        fmt = dataclasses.replace(fmt, big_endian=True)
    if step != row:
        align = min(size, 4)
        if fmt.pixel_format is None and step % align:
            raise NotShown(f"step {step} of {fmt.describe()} is not a multiple of its {size}-byte samples")
        fmt = dataclasses.replace(fmt, row_stride=step)
    need = fmt.byte_count()
    view = memoryview(data).cast("B")
    if view.nbytes < need:
        raise NotShown(f"{fmt.describe()} with step {step} needs {need} bytes, the message has {view.nbytes}")
    return RosImage(kind, fmt, view[:need], meter)
