"""`pixelrun info REC.rrd`: a quick look inside a recording, like `rerun rrd print`.

For each file: the recordings it names, its timelines with their time ranges, and per
entity the rows (static ones counted apart), the bytes held after decoding, the
components, and for images the latest format (depth and segmentation images too; an
EncodedImage's media type and the size its header gives, pixels not decoded). Everything in the file is listed, not
only images. Problems (truncation, corrupt messages with their byte offsets and
entities, a damaged footer) are printed to stderr, one line each, and make the exit
code 1 (info is the command that checks a file); the rest of the file is still shown.
A file that is not an .rrd at all is said to be so.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import pyarrow as pa

from pixelrun.engine import encoded
from pixelrun.engine.archetypes import DRAWABLE, IMAGE, Archetype, archetype_of, undrawn_archetypes
from pixelrun.engine.chunk import format_from_struct, format_time, printable
from pixelrun.engine.cli.main import error_line
from pixelrun.engine.mcap import is_mcap
from pixelrun.engine.mcap import summary as mcap_summary
from pixelrun.engine.store.source import not_rrd_reason
from pixelrun.engine.store.store import ChunkStore, StoreWarning


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def _latest(store: ChunkStore, entity: str, column: str, timelines: list[str]):
    """The last instance of a component shown last (static, else the latest on any timeline), or None."""
    for tl in [None, *timelines]:
        hit = store.latest_at(entity, [column], tl, None).get(column)
        if hit is None or len(hit.values) == 0:
            continue
        inst = hit.values[len(hit.values) - 1]
        return inst if inst.is_valid else None
    return None


def _describe(store: ChunkStore, entity: str, arch: Archetype, timelines: list[str]) -> str:
    """One drawable archetype's latest image, described without decoding pixels: a raw
    image's format ("L/U16 160x120", then "depth" / "segmentation" for the one-channel
    archetypes), an encoded image's media type and header size ("image/jpeg 160x120")."""
    fields = {c.field for c in arch.components}
    kind = "" if arch is IMAGE else " " + arch.short_name.removesuffix("Image").lower()
    try:
        if "format" in fields:
            inst = _latest(store, entity, arch.column("format"), timelines)
            return "" if inst is None else format_from_struct(inst.as_py()).describe() + kind
        if "blob" in fields:
            blob = _latest(store, entity, arch.column("blob"), timelines)
            if blob is None:
                return ""
            media = _latest(store, entity, arch.column("media_type"), timelines) if "media_type" in fields else None
            data = blob.values.to_numpy(zero_copy_only=False) if isinstance(blob, pa.ListScalar) else blob.as_py()
            media_type, width, height = encoded.header(data, None if media is None else media.as_py())
            return f"{media_type} {width}x{height}"
    except encoded.DecodeError as exc:
        return printable(f"{arch.short_name}: {exc}", 120)
    except (ValueError, TypeError, KeyError, pa.ArrowException) as exc:  # damaged values
        return printable(f"invalid {arch.short_name} ({exc})", 120)
    return ""


def _image_column(store: ChunkStore, entity: str, components, timelines: list[str]) -> str:
    """The "image" column: each drawable archetype (archetypes.DRAWABLE) the entity holds, described."""
    found = [_describe(store, entity, a, timelines) for a in DRAWABLE if a.required_columns[0] in components]
    return "; ".join(d for d in found if d)


def summarize(path: str) -> dict:
    """Everything `info` prints, as plain data (what --json writes)."""
    store = ChunkStore(memory_limit=None, keep_components=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)  # reported below instead
        report = store.ingest_file(path)
    timelines = store.timelines()
    entities = []
    for e in store.entity_info():
        entities.append(
            {
                "entity": e.path,
                "rows": e.rows,
                "static_rows": e.static_rows,
                "bytes": e.nbytes,
                "components": list(e.components),
                "archetypes": sorted({a for a in map(archetype_of, e.components) if a is not None}),
                "not_drawn": undrawn_archetypes(e.path, e.components),
                "image": _image_column(store, e.path, e.components, list(timelines)),
            }
        )
    return {
        "file": str(path),
        "recordings": [
            {"application_id": i.application_id, "recording_id": i.recording_id, "kind": i.kind,
             "sdk_version": ".".join(map(str, i.sdk_version))}
            for i in store.store_infos
        ],
        "chunks": report.chunks,
        "rows": report.rows,
        "bytes": store.held_bytes,
        "timelines": [
            {"timeline": t.name, "kind": t.kind, "min": t.min, "max": t.max, "rows": t.rows}
            for t in timelines.values()
        ],
        "entities": entities,
        "notes": list(report.notes),
        "problems": [str(p) for p in report.problems],
    }


def render_text(s: dict) -> str:
    # names come from the file: control characters are escaped, never sent to the terminal
    out = [f"{s['file']}: {s['chunks']} chunks, {s['rows']} rows, {human_bytes(s['bytes'])} decoded"]
    for r in s["recordings"]:
        out.append(printable(f"  {r['kind']} {r['application_id']!r} / {r['recording_id']!r} "
                             f"(Rerun SDK {r['sdk_version']})"))
    out.append("")
    if s["timelines"]:
        rows = [
            [printable(t["timeline"], 80), t["kind"], format_time(t["kind"], t["min"]),
             format_time(t["kind"], t["max"]), str(t["rows"])]
            for t in s["timelines"]
        ]
        out += [_table(["timeline", "kind", "from", "to", "rows"], rows), ""]
    else:
        out += ["(no timelines: static data only)", ""]
    rows = [
        [printable(e["entity"], 120), str(e["rows"]), str(e["static_rows"]), human_bytes(e["bytes"]),
         printable(", ".join(a + (" (not drawn yet)" if a in e["not_drawn"] else "") for a in e["archetypes"]), 200),
         e["image"], printable(", ".join(e["components"]), 300)]
        for e in s["entities"]
    ]
    out.append(_table(["entity", "rows", "static", "bytes", "archetypes", "image", "components"], rows))
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    status = 0
    summaries = []
    for path in args.files:
        try:
            reason = not_rrd_reason(path)
            if reason is not None:
                print(f"pixelrun info: {reason}", file=sys.stderr)
                status = 1
                continue
            # an MCAP file with a summary section answers from it alone (engine/mcap/summary.py)
            s = (mcap_summary.summarize(path) if is_mcap(path) else None) or summarize(path)
        except OSError as exc:
            print(f"pixelrun info: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
            status = 1
            continue
        except Exception as exc:  # one file's failure never hides the others
            print(error_line(f"pixelrun info: {path}", exc), file=sys.stderr)
            status = 1
            continue
        summaries.append(s)
        if s["problems"]:
            status = 1
            for p in s["problems"]:
                print(f"{path}: {printable(p, 600)}", file=sys.stderr)
        if not args.json:
            print(mcap_summary.render_text(s) if s.get("format") == "mcap" else render_text(s))
            print()
    if args.json:
        print(json.dumps(summaries if len(args.files) > 1 else (summaries[0] if summaries else None), indent=1))
    return status


def register(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `pixelrun info` to its parser (engine/cli/main.py makes it)."""
    p.add_argument("files", nargs="+", metavar="REC.rrd", help="recording(s) to inspect")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
