"""`pixelrun info`'s "image" column for the whole image family (engine/cli/info.py).

Each drawable archetype is described from its latest row: raw images by their format
(depth and segmentation images named as such), an EncodedImage by its media type (logged,
or guessed from the bytes) and the size its header gives -- the pixels are not decoded
(checked by a JPEG whose header is intact and whose pixel data is cut off).
"""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image as PILImage

import pixelrun as rr
from pixelrun.engine import encoded
from pixelrun.engine.cli.main import main


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


RGB = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
JPEG = _encode(RGB, "JPEG")
PNG = _encode(RGB[:30, :40], "PNG")


def _info(tmp_path, capsys, log) -> dict:
    path = tmp_path / "family.rrd"
    rec = rr.RecordingStream("info-family")
    rec.save(str(path))
    log(rec)
    rec.flush()
    rec.close()
    capsys.readouterr()
    assert main(["info", "--json", str(path)]) == 0
    s = json.loads(capsys.readouterr().out)
    return {e["entity"]: e["image"] for e in s["entities"]}


def _family(rec):
    rec.set_time("step", sequence=0)
    rec.log("rgb", rr.Image(RGB[:4, :6]))
    rec.log("depth", rr.DepthImage(np.zeros((120, 160), np.uint16), meter=1000.0))
    rec.log("depth_f", rr.DepthImage(np.zeros((3, 5), np.float32)))
    rec.log("seg", rr.SegmentationImage(np.zeros((12, 16), np.uint8)))
    rec.log("jpeg", rr.EncodedImage(contents=JPEG))  # media type guessed from the bytes
    rec.log("png", rr.EncodedImage(contents=PNG, media_type="image/png"))
    rec.log("ctx", rr.AnnotationContext([(1, "person", (255, 0, 0))]), static=True)  # not an image
    rec.set_time("step", sequence=1)
    rec.log("jpeg_later", rr.EncodedImage(contents=_encode(RGB[:10, :20], "JPEG")))
    rec.set_time("step", sequence=2)
    rec.log("jpeg_later", rr.EncodedImage(contents=JPEG))  # the latest row is the one described


def test_image_column_describes_every_drawable_archetype(tmp_path, capsys):
    images = _info(tmp_path, capsys, _family)
    assert images["/rgb"] == "RGB/U8 6x4"
    assert images["/depth"] == "L/U16 160x120 depth"
    assert images["/depth_f"] == "L/F32 5x3 depth"
    assert images["/seg"] == "L/U8 16x12 segmentation"
    assert images["/jpeg"] == "image/jpeg 160x120"
    assert images["/png"] == "image/png 40x30"
    assert images["/jpeg_later"] == "image/jpeg 160x120"
    assert images["/ctx"] == ""


def test_encoded_size_comes_from_the_header_without_decoding(tmp_path, capsys):
    sos = JPEG.index(b"\xff\xda")  # start of scan: the header before it, the pixels after
    header_only = JPEG[: sos + 40]
    images = _info(tmp_path, capsys, lambda rec: rec.log("cut", rr.EncodedImage(contents=header_only), static=True))
    assert images["/cut"] == "image/jpeg 160x120"
    assert encoded.header(header_only) == ("image/jpeg", 160, 120)


def test_undecodable_encoded_image_is_named_in_the_column(tmp_path, capsys):
    def log(rec):
        rec.log("junk", rr.EncodedImage(contents=b"\xff\xd8\xff" + b"\x00" * 20, media_type="image/jpeg"),
                static=True)
        rec.log("ok", rr.EncodedImage(contents=PNG), static=True)

    images = _info(tmp_path, capsys, log)
    assert images["/junk"].startswith("EncodedImage: image/jpeg, 23 bytes: not a readable JPEG file")
    assert images["/ok"] == "image/png 40x30"
