"""The window viewer (`pixelrun view`).

window.py is the glfw/rendercanvas window and its draw loop; panels.py the imgui panels;
data.py the viewer's model (store, timelines, overrides); view.py pan/zoom; inspect.py the
hover readout of raw values; server.py the live-data listener.
"""
