"""Rerun 0.41 .rrd files and streams: where a chunk becomes bytes and back.

codec.py encodes and decodes messages (RRF2 header, framed protobuf LogMsg, Arrow IPC
payloads, LZ4); footer.py writes and reads the footer/manifest; proto.py builds the
protobuf classes from protos/*.proto.
"""
