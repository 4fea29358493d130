"""Current-API twin of seed_image_send_columns.py (Rerun 0.41 style)."""

import numpy as np

import pixelrun as rr

rr.init("rerun_example_image_send_columns")
rr.spawn()

times = np.arange(0, 20)
width, height = 300, 200
images = np.zeros((len(times), height, width, 3), dtype=np.uint8)
images[:, :, :, 2] = 255
for t in times:
    images[t, 50:150, (t * 10) : (t * 10 + 100), 1] = 255

format_static = rr.components.ImageFormat(width=width, height=height, color_model="RGB", channel_datatype="U8")
rr.log("images", rr.Image.from_fields(format=format_static), static=True)

rr.send_columns(
    "images",
    indexes=[rr.TimeColumn("step", sequence=times)],
    columns=rr.Image.columns(buffer=images),  # any (N, ...) array: split per frame by bytes
)
