"""The `pixelrun` command line: main.py dispatches to one module per subcommand.

render, info, view, demo, formats, setup; examples/ holds the seed scripts the demo runs.
"""
