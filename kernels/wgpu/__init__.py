"""The wgpu backend: WGSL compute shaders for conversion and the compositor.

device.py picks the adapter and owns the process's shared device; convert.py binds the
decode shaders (shaders/color.wgsl, yuv.wgsl, bayer.wgsl: NV12 and every YUV family are
decoded in yuv.wgsl); composite.py is the Renderer (texture cache, compositing, readback);
backend.py is the entry the backend registry calls.
"""
