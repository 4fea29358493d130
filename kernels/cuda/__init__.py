"""The CUDA backend (CuPy): *.cu/*.cuh kernel sources and the Python that launches them.

convert.py compiles the RawModule once and converts single frames and whole columns;
composite.py is the CUDA compositor and batch renderer. Imported only when CuPy is there.
"""
