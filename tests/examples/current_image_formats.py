"""Current-API twin of seed_image_formats.py (Rerun 0.41 style)."""

import numpy as np

import pixelrun as rr

rr.init("rerun_example_image_formats")
rr.spawn()

image = np.array([[[x, min(255, x + y), y] for x in range(0, 256)] for y in range(0, 256)], dtype=np.uint8)
rr.log("image_rgb", rr.Image(image, color_model=rr.ColorModel.RGB))
rr.log("image_green_only", rr.Image(image[:, :, 1], color_model=rr.ColorModel.L))
rr.log("image_bgr", rr.Image(image[:, :, ::-1], color_model=rr.ColorModel.BGR))

y = bytes([128 for y in range(0, 256) for x in range(0, 256)])
u = bytes([x * 2 for y in range(0, 256) for x in range(0, 128)])
v = bytes([y for y in range(0, 256) for x in range(0, 128)])
rr.log("image_yuv422", rr.Image(bytes=y + u + v, width=256, height=256, pixel_format=rr.PixelFormat.Y_U_V16_FullRange))
