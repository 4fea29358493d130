"""The `pixelrun` command line: one subcommand per module, imported only when used.

COMMANDS names each subcommand's module and its one-line description (what
``pixelrun --help`` lists, without importing any of them). Each module defines
``register(parser)``, which adds its arguments to the parser made for it and sets
``func`` (called with the parsed args, returning an exit code); the parser's
description is the module docstring's first paragraph. ``python -m pixelrun`` and
``python -m pixelrun.engine.cli`` run the same command line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import os
import sys
import warnings

from pixelrun.engine.chunk import printable
from pixelrun.kernels.errors import NotDrawnWarning, PixelrunWarning

# subcommand name -> (module that implements it, one-line description)
COMMANDS = {
    "setup": ("pixelrun.engine.cli.setup", "install missing system packages (Vulkan driver, Xvfb)"),
    "formats": ("pixelrun.engine.cli.formats", "list every supported image format and its byte count"),
    "demo": ("pixelrun.engine.cli.demo", "record + render the seed examples, decode a sample of every format"),
    "render": ("pixelrun.engine.cli.render", "render a recording's view to PNG (headless)"),
    "info": ("pixelrun.engine.cli.info", "entities, components, timelines, rows and bytes of .rrd recordings"),
    "view": ("pixelrun.engine.cli.view", "open the viewer window (live data and/or .rrd files)"),
    "convert": ("pixelrun.engine.cli.convert", "write an MCAP file's (ROS 2 bag's) image topics as a Rerun .rrd"),
}


def version() -> str:
    """The installed pixelrun's version (its package metadata)."""
    try:
        return importlib.metadata.version("pixelrun")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown (not installed)"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand `only` (None: none) has its module imported and
    its arguments added, the others are listed with their description."""
    parser = argparse.ArgumentParser(
        prog="pixelrun", description="pixelrun: log camera images Rerun's way; render and view them exactly."
    )
    parser.add_argument("--version", action="version", version=f"pixelrun {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if name != only:
            sub.add_parser(name, help=summary, description=summary)
            continue
        mod = importlib.import_module(module)
        doc = (mod.__doc__ or summary).split("\n\n")[0]
        p = sub.add_parser(name, help=summary, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.register(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"pixelrun {args.command}"
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `pixelrun formats | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a command line answers in one line, not a traceback
        if os.environ.get("PIXELRUN_DEBUG"):
            raise
        print(error_line(prog, exc) + " (PIXELRUN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def error_line(prog: str, exc: BaseException) -> str:
    """'pixelrun render: ValueError: ...' on one line, whatever the exception holds."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{prog}: {type(exc).__name__}: {printable(text, 500)}"


@contextlib.contextmanager
def warnings_as_lines(prog: str):
    """Inside: warnings are collected; at the end each distinct one is printed once on
    stderr as 'PROG: warning: ...' (one line). Yields a list that then holds the
    distinct PixelrunWarnings (pixelrun's own: something in the data) that were printed."""
    data_warnings: list[str] = []
    printed: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)  # each frame's, not once per line of code
        try:
            yield data_warnings
        finally:
            for w in caught:
                text = printable(" ".join(str(w.message).split()), 500)
                if text not in printed:
                    printed.add(text)
                    print(f"{prog}: warning: {text}", file=sys.stderr)
                    # a gap in what this version draws is said, but is no problem in the data
                    if issubclass(w.category, PixelrunWarning) and not issubclass(w.category, NotDrawnWarning):
                        data_warnings.append(text)


if __name__ == "__main__":
    sys.exit(main())
