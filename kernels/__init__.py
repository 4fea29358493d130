"""pixelrun.kernels: what a pixel format is and how it becomes display RGBA.

The format table (`formats`), the NumPy reference decoder (`reference`), WGSL compute
shaders and CUDA sources with the Python that binds them. Imports nothing from
pixelrun.engine or the SDK.
"""

from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    PixelFormat,
    byte_count,
    check,
    validate,
)

__all__ = [
    "COLOR_MODELS", "DATATYPES", "PIXEL_FORMATS", "ChannelDatatype", "ColorModel",
    "ImageFormat", "PixelFormat", "byte_count", "check", "validate",
]
