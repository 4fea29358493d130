"""Current-API twin of seed_image_simple.py (Rerun 0.41 style)."""

import numpy as np

import pixelrun as rr

image = np.zeros((200, 300, 3), dtype=np.uint8)
image[:, :, 0] = 255
image[50:150, 50:150] = (0, 255, 0)

rr.init("rerun_example_image")
rr.spawn()

rr.log("image", rr.Image(image, color_model=rr.ColorModel.RGB))
