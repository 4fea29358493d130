"""The `pixelrun` command line: one subcommand per module, imported only when used.

Each module named in COMMANDS defines ``register(subparsers)`` which adds its parser
and sets ``func`` (called with the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module that implements it
COMMANDS = {
    "setup": "pixelrun.engine.cli_setup",
    "formats": "pixelrun.engine.cli_formats",
    "demo": "pixelrun.engine.cli_demo",
    "render": "pixelrun.engine.cli_render",
    "info": "pixelrun.engine.cli_info",
    "view": "pixelrun.engine.cli_view",
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
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `pixelrun formats | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
