"""pixelrun: Rerun-style image logging (``import pixelrun as rr``)."""
