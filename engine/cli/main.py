"""The `pixelrun` command line: one subcommand per module, imported only when used.

Each module named in COMMANDS defines ``register(subparsers)`` which adds its parser
and sets ``func`` (called with the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings

# subcommand name -> module that implements it
COMMANDS = {
    "setup": "pixelrun.engine.cli.setup",
    "formats": "pixelrun.engine.cli.formats",
    "demo": "pixelrun.engine.cli.demo",
    "render": "pixelrun.engine.cli.render",
    "info": "pixelrun.engine.cli.info",
    "view": "pixelrun.engine.cli.view",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelrun", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help="(run `pixelrun %s -h`)" % name)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue  # not built yet
        mod.register(sub)
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
    except Exception as exc:  # noqa: BLE001 - a command line answers in one line, not a traceback
        if os.environ.get("PIXELRUN_DEBUG"):
            raise
        print(error_line(prog, exc) + " (PIXELRUN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def error_line(prog: str, exc: BaseException) -> str:
    """'pixelrun render: ValueError: ...' on one line, whatever the exception holds."""
    from pixelrun.engine.chunk import printable  # noqa: PLC0415

    text = " ".join(str(exc).split()) or "(no message)"
    return f"{prog}: {type(exc).__name__}: {printable(text, 500)}"


@contextlib.contextmanager
def warnings_as_lines(prog: str):
    """Inside: warnings are collected; at the end each distinct one is printed once on
    stderr as 'PROG: warning: ...' (one line). Yields a list that then holds the
    distinct UserWarnings (pixelrun's own: something in the data) that were printed."""
    data_warnings: list[str] = []
    printed: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)  # each frame's, not once per line of code
        try:
            yield data_warnings
        finally:
            from pixelrun.engine.chunk import printable  # noqa: PLC0415

            for w in caught:
                text = printable(" ".join(str(w.message).split()), 500)
                if text not in printed:
                    printed.add(text)
                    print(f"{prog}: warning: {text}", file=sys.stderr)
                    if issubclass(w.category, UserWarning):
                        data_warnings.append(text)


if __name__ == "__main__":
    sys.exit(main())
