"""The chunk store: ingest, indexed latest-at and range queries, the memory limit.

store.py is ChunkStore; index.py the sorted per-(entity, timeline, component) index;
memory.py the memory accounting and eviction; source.py reads .rrd files and streams
into a store.
"""
