"""The NumPy reference backend: the readable oracle every other backend is checked against.

convert.py decodes raw image bytes to display RGBA (docs/contract.md §2-3);
composite.py blends layers into a view (§4).
"""
