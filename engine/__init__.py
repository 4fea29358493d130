"""pixelrun.engine: chunk schema, .rrd codec, store, scene building, renderers, CLI.

Never imports the SDK (`pixelrun` top level); depends on pixelrun.kernels only.
"""
