"""The image family in .rrd files, both ways with real Rerun 0.41 (.venv-rerun).

One script logs a depth image, a JPEG, a segmentation mask with its annotation context
and an RGB image; it runs unchanged under Rerun's SDK and under pixelrun (the module is
its first argument). Rerun's file must open in pixelrun with every entity and byte; ours
must pass `rerun rrd verify` and hold the same columns, types and values as Rerun's.
Rerun's file draws every entity here (depth, JPEG, segmentation coloured by Rerun's
context). Entities of archetypes pixelrun does not draw (Points2D, Boxes2D, TextLog, from
a second Rerun-written file) are listed by `pixelrun info` and named once by render and
the viewer. Skipped, with the reason, when .venv-rerun is absent.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from pixelrun.engine import api
from pixelrun.engine.chunk import buffer_row
from pixelrun.engine.cli import info
from pixelrun.engine.cli.main import main as pixelrun_main
from pixelrun.engine.rrd.decode import read_rrd
from pixelrun.engine.store.store import ChunkStore
from pixelrun.engine.viewer.data import ViewerData
from pixelrun.kernels.errors import RenderWarning

ROOT = Path(__file__).resolve().parents[2]
RERUN_PY = ROOT / ".venv-rerun" / "bin" / "python"
RERUN_BIN = ROOT / ".venv-rerun" / "bin" / "rerun"
pytestmark = pytest.mark.skipif(not RERUN_PY.exists(), reason="real rerun-sdk 0.41 not installed in .venv-rerun")
ENV = dict(os.environ, XDG_RUNTIME_DIR="/tmp", RERUN_TELEMETRY_ENABLED="false")

SCRIPT = """
import importlib, sys
import numpy as np
rr = importlib.import_module(sys.argv[1])
out, jpeg = sys.argv[2], sys.argv[3]
rr.init("family", recording_id="rec-family")
rr.save(out)
rr.log("cam", rr.AnnotationContext([rr.AnnotationInfo(id=1, label="car", color=(255, 0, 0)),
                                    (2, "person", (0, 255, 0, 128))]), static=True)
rr.set_time("step", sequence=1)
rr.log("cam/rgb", rr.Image(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)))
rr.log("cam/depth", rr.DepthImage(np.arange(6, dtype=np.uint16).reshape(2, 3) * 1000, meter=1000.0,
                                  colormap="viridis", depth_range=[0.0, 5000.0], draw_order=-20))
rr.log("cam/jpeg", rr.EncodedImage(contents=open(jpeg, "rb").read(), media_type="image/jpeg", opacity=0.5))
rr.log("cam/seg", rr.SegmentationImage(np.array([[0, 1, 2], [2, 1, 0]], np.uint8), opacity=0.6))
"""

DEPTH = (np.arange(6, dtype="<u2") * 1000).tobytes()
MASK = bytes([0, 1, 2, 2, 1, 0])
RGB = bytes(range(18))
ARCHETYPES = {"/cam": "AnnotationContext", "/cam/rgb": "Image", "/cam/depth": "DepthImage",
              "/cam/jpeg": "EncodedImage", "/cam/seg": "SegmentationImage"}

# Rerun-only: archetypes pixelrun reads, lists and names, but does not draw.
UNDRAWN_SCRIPT = """
import sys
import numpy as np
import rerun as rr
rr.init("undrawn", recording_id="rec-undrawn")
rr.save(sys.argv[1])
rr.log("cam/rgb", rr.Image(np.zeros((2, 3, 3), np.uint8)), static=True)
rr.log("cam/points", rr.Points2D([[0, 0], [1, 1]]), static=True)
rr.log("cam/boxes", rr.Boxes2D(mins=[[0, 0]], sizes=[[1, 1]]), static=True)
rr.log("log", rr.TextLog("hello"), static=True)
"""
UNDRAWN = {"/cam/points": "Points2D", "/cam/boxes": "Boxes2D", "/log": "TextLog"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("family")
    jpeg = d / "frame.jpg"
    buf = io.BytesIO()
    PILImage.fromarray(np.full((4, 6, 3), 90, np.uint8)).save(buf, format="JPEG", quality=90)
    jpeg.write_bytes(buf.getvalue())
    out = {}
    for who, python, module in (("rerun", str(RERUN_PY), "rerun"), ("pixelrun", sys.executable, "pixelrun")):
        path = d / f"{who}.rrd"
        subprocess.run([python, "-c", SCRIPT, module, str(path), str(jpeg)], check=True, env=ENV, timeout=120)
        out[who] = path
    out["jpeg"] = jpeg.read_bytes()
    out["undrawn"] = d / "undrawn.rrd"
    subprocess.run([str(RERUN_PY), "-c", UNDRAWN_SCRIPT, str(out["undrawn"])], check=True, env=ENV, timeout=120)
    return out


def _component_columns(path) -> dict:
    """(entity, column) -> (Arrow type, values) for every content component of a file."""
    rec = read_rrd(path)
    assert rec.problems == []
    got = {}
    for c in rec.chunks:
        if c.entity_path.startswith("/__"):  # recording properties, not content
            continue
        for name, col in c.components.items():
            got[(c.entity_path, name)] = (str(col.type), col.to_pylist())
    return got


def test_rerun_file_opens_with_every_entity_and_byte(files):
    store = ChunkStore(memory_limit=None, keep_components=None)
    store.ingest_file(files["rerun"])
    assert store.problems == []
    assert {"/cam", "/cam/rgb", "/cam/depth", "/cam/jpeg", "/cam/seg"} <= set(store.entities())
    rows = {}
    for c in read_rrd(files["rerun"]).chunks:
        for name, col in c.components.items():
            if name.endswith((":buffer", ":blob")):
                rows[(c.entity_path, name)] = bytes(buffer_row(col, 0))
    assert rows == {("/cam/rgb", "Image:buffer"): RGB, ("/cam/depth", "DepthImage:buffer"): DEPTH,
                    ("/cam/jpeg", "EncodedImage:blob"): files["jpeg"], ("/cam/seg", "SegmentationImage:buffer"): MASK}
    hit = store.latest_at("/cam/depth", ["DepthImage:colormap"], "step", None)["DepthImage:colormap"]
    assert hit.values.to_pylist() == [6]  # Viridis


def test_info_lists_every_entity_with_its_archetypes(files, capsys):
    by = {e["entity"]: e for e in info.summarize(str(files["rerun"]))["entities"]}
    for ent, arch in ARCHETYPES.items():
        assert by[ent]["archetypes"] == [arch] and by[ent]["not_drawn"] == [], ent
    assert pixelrun_main(["info", str(files["rerun"])]) == 0
    assert "not drawn" not in capsys.readouterr().out
    by = {e["entity"]: e for e in info.summarize(str(files["undrawn"]))["entities"]}
    for ent, arch in UNDRAWN.items():
        assert by[ent]["archetypes"] == [arch] and by[ent]["not_drawn"] == [arch], ent
    assert pixelrun_main(["info", str(files["undrawn"])]) == 0
    text = capsys.readouterr().out
    for ent, arch in UNDRAWN.items():
        assert re.search(rf"\| {re.escape(ent)} +\|.*\| {arch} \(not drawn yet\) +\|", text), ent


def test_rerun_family_file_draws_every_entity(files):
    store = api.open_store(files["rerun"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left out, nothing named "not drawn"
        first = api.render(store, backend="numpy")
        again = api.render(store, backend="numpy")
        layers = api.layers_at(store, timeline="step")
    assert first.shape == (4, 6, 4) and np.array_equal(first, again)  # the JPEG is 6x4, the others 3x2
    got = {l.entity: l for l in layers}
    assert [l.entity for l in layers] == ["/cam/depth", "/cam/jpeg", "/cam/rgb", "/cam/seg"]  # -20, -10, -10, 0
    depth, seg = got["/cam/depth"], got["/cam/seg"]
    assert (depth.kind, depth.colormap, depth.value_range, depth.draw_order) == ("depth", 6, (0.0, 5000.0), -20.0)
    assert (seg.kind, seg.opacity, seg.draw_order) == ("segmentation", np.float32(0.6), 0.0)  # as logged
    # Rerun's AnnotationContext on /cam colours /cam/seg: car red, person green at alpha 128 (stored as the
    # straight colour that blends as Rerun's sRGB-premultiplied (0, 128, 0, 128): test_image_family_depth_seg)
    assert seg.class_colors[1].tolist() == [255, 0, 0, 255] and seg.class_colors[2].tolist() == [0, 175, 0, 128]
    alone = api.render(store, entity="cam/seg", backend="numpy")  # no other image: its logged 0.6 still
    assert alone[0, 1].tolist() == [255, 0, 0, round(0.6 * 255)]
    rgb = api.render(store, entity="cam/rgb", backend="numpy")
    assert rgb[..., :3].reshape(-1).tobytes() == RGB
    jpeg = api.render(store, entity="cam/jpeg", backend="numpy")
    want = np.asarray(PILImage.open(io.BytesIO(files["jpeg"])).convert("RGB"))
    assert np.array_equal(jpeg[..., :3], want) and (jpeg[..., 3] == 128).all()  # logged opacity 0.5


def test_render_names_each_undrawn_entity_once_and_draws_the_image(files):
    store = api.open_store(files["undrawn"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = api.render(store, backend="numpy")
        again = api.render(store, backend="numpy")
    named = sorted(str(w.message) for w in caught if issubclass(w.category, RenderWarning))
    assert named == sorted(f"left out of the render: {e}: {a} is not drawn yet" for e, a in UNDRAWN.items())
    assert first.shape == (2, 3, 4) and np.array_equal(first, again)
    with warnings.catch_warnings(record=True) as caught:  # a subtree: only its entities
        warnings.simplefilter("always")
        api.render(files["undrawn"], entity="cam/rgb", backend="numpy")
    assert [str(w.message) for w in caught] == []
    # an entity holding only what is not drawn: said so, not "not in this recording"
    with pytest.raises(api.NotFoundError, match=r"nothing to draw at or under 'cam/points': "
                       r"/cam/points: Points2D is not drawn yet \(entities drawn: /cam/rgb\)"):
        api.render(files["undrawn"], entity="cam/points", backend="numpy")


def test_pixelrun_file_holds_what_rerun_writes_and_passes_verify(files):
    ours, theirs = _component_columns(files["pixelrun"]), _component_columns(files["rerun"])
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        assert ours[key] == theirs[key], key  # same Arrow type (nullability included) and values
    r = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(files["pixelrun"])],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_rerun_reads_the_same_columns_from_our_file(files):
    def columns(path):
        r = subprocess.run([str(RERUN_BIN), "rrd", "print", str(path)], capture_output=True, text=True,
                           env=ENV, timeout=120)
        assert r.returncode == 0, r.stderr
        # one line per chunk: "Chunk(...) with 1 rows (...) - /cam/depth - data columns: [A:x B:y]"
        return sorted({(ent, col) for ent, cols in re.findall(r" - (/\S*) - data columns: \[([^\]]*)\]", r.stdout)
                       for col in cols.split() if ent.startswith("/cam")})

    theirs = columns(files["rerun"])
    assert ("/cam/depth", "DepthImage:colormap") in theirs and ("/cam", "AnnotationContext:context") in theirs
    assert columns(files["pixelrun"]) == theirs


def test_value_range_extension_passes_verify(tmp_path):
    path = tmp_path / "vr.rrd"
    script = ("import numpy as np, pixelrun as rr; rr.init('vr'); rr.save(%r); "
              "rr.log('img', rr.Image(np.zeros((2, 2), np.uint16), value_range=[0, 4000], "
              "magnification_filter='linear'))" % str(path))
    subprocess.run([sys.executable, "-c", script], check=True, env=ENV, timeout=120)
    r = subprocess.run([str(RERUN_BIN), "rrd", "verify", str(path)], capture_output=True, text=True,
                       env=ENV, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    (col,) = [c.components["Image:value_range"] for c in read_rrd(path).chunks if "Image:value_range" in c.components]
    assert col.to_pylist() == [[[0.0, 4000.0]]]


def test_viewer_lists_undrawn_entities_once_and_keeps_them_shown(files):
    store = ChunkStore(memory_limit=None)  # what `pixelrun view` keeps: the components the scene reads
    store.ingest_file(files["undrawn"])
    data = ViewerData(store)
    data.layers()
    data.layers()  # every frame asks again: each entity is named once, and stays listed
    want = [f"{e}: {a} is not drawn yet" for e, a in sorted(UNDRAWN.items())]
    assert data.undrawn == want
    assert data.scene_problems[-len(want):] == want
    family = ChunkStore(memory_limit=None)
    family.ingest_file(files["rerun"])
    family_view = ViewerData(family)
    family_view.sync_playback()  # the viewer's first frame: a timeline and its latest time
    assert len(family_view.layers()) == 4 and family_view.undrawn == [] and family_view.scene_problems == []
