"""`pixelrun formats`: every supported image format with its byte-count rule.

Everything printed comes from the format table (pixelrun.kernels.formats): the 14
PixelFormats with their planes, matrix and range, and the 5 ColorModels x 11
ChannelDatatypes, each with the rule for its byte count and the count at --size.
"""

from __future__ import annotations

import argparse

from pixelrun.kernels.formats import (
    COLOR_MODELS,
    DATATYPES,
    PIXEL_FORMATS,
    ChannelDatatype,
    ColorModel,
    ImageFormat,
    PixelFormat,
)


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H), both at least 1; argparse-friendly error otherwise."""
    try:
        w, h = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 1920x1080, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be at least 1, got {text!r}")
    return w, h


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    def line(cells) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def pixel_format_rows(width: int, height: int) -> list[list[str]]:
    rows = []
    for pf in PixelFormat:
        info = PIXEL_FORMATS[pf]
        planes = " · ".join(f"{p.name} {p.row_bytes}x{p.rows}" for p in info.planes(width, height))
        if info.is_bayer:
            colour = f"Bayer {info.bayer_pattern}, sRGB-encoded"
        else:
            colour = f"{info.matrix.name} {info.range.name}"
        count = ImageFormat(width, height, pixel_format=pf).byte_count()
        rows.append([pf.name, str(pf.value), info.byte_rule, str(count), planes, colour])
    return rows


def color_rows(width: int, height: int) -> list[list[str]]:
    rows = []
    for model in ColorModel:
        for dt in ChannelDatatype:
            channels, size = COLOR_MODELS[model].channels, DATATYPES[dt].size
            count = ImageFormat(width, height, color_model=model, channel_datatype=dt).byte_count()
            rows.append([f"{model.name}/{dt.name}", f"{model.value}/{dt.value}",
                         f"N*{channels}*{size}", str(count)])
    return rows


def formats_table(width: int = 1920, height: int = 1080) -> str:
    """Both tables as Markdown, with example byte counts at width x height."""
    n = f"N = W*H, cw = ceil(W/2), ch = ceil(H/2); examples at {width}x{height}"
    return "\n".join([
        f"## Pixel formats ({len(PixelFormat)}), 8-bit samples — {n}",
        "",
        _markdown(["pixel_format", "value", "bytes", f"at {width}x{height}", "planes (row bytes x rows)", "colour"],
                  pixel_format_rows(width, height)),
        "",
        f"## Colour models x channel datatypes ({len(ColorModel)} x {len(ChannelDatatype)}), "
        "little-endian, row-major, interleaved",
        "",
        _markdown(["color_model/datatype", "values", "bytes", f"at {width}x{height}"], color_rows(width, height)),
    ])


def _run(args: argparse.Namespace) -> int:
    print(formats_table(*args.size))
    return 0


def register(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `pixelrun formats` to its parser (engine/cli/main.py makes it)."""
    p.add_argument("--size", type=parse_size, default=(1920, 1080), metavar="WxH",
                   help="image size for the example byte counts (default 1920x1080)")
    p.set_defaults(func=_run)
