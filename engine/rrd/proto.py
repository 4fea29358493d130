"""Protobuf message classes for .rrd bodies, built from engine/rrd/protos/*.proto at import.

The .proto files next to this module are the single source of truth (a subset of
Rerun 0.41's definitions, same names and field numbers). Instead of a protoc build
step we parse that small subset of proto3 here (messages, enums, ``optional``,
``repeated``, ``reserved``, imports) into descriptors and let the ``protobuf`` package
generate the classes, so the wire encoding is protobuf's own.

Use: ``from pixelrun.engine.rrd.proto import pb`` then ``pb.ArrowMsg()``, ``pb.Tuid()``...
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PROTO_DIR = Path(__file__).parent / "protos"
_FILES = ("rerun_common.proto", "rerun_log_msg.proto")

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "double": _F.TYPE_DOUBLE,
    "float": _F.TYPE_FLOAT,
    "int64": _F.TYPE_INT64,
    "uint64": _F.TYPE_UINT64,
    "int32": _F.TYPE_INT32,
    "uint32": _F.TYPE_UINT32,
    "fixed64": _F.TYPE_FIXED64,
    "fixed32": _F.TYPE_FIXED32,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "sint32": _F.TYPE_SINT32,
    "sint64": _F.TYPE_SINT64,
}

_TOKEN = re.compile(r'"[^"]*"|[A-Za-z_][\w.]*|-?\d+|[{}=;\[\]<>,()]')


def _tokens(text: str) -> list[str]:
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return _TOKEN.findall(text)


def _parse(name: str, text: str, enums: set[str]) -> descriptor_pb2.FileDescriptorProto:
    """Parse the proto3 subset used in engine/rrd/protos into a FileDescriptorProto."""
    fdp = descriptor_pb2.FileDescriptorProto(name=name, syntax="proto3")
    toks = _tokens(text)
    i = 0
    package = ""
    pending: list[tuple[descriptor_pb2.FieldDescriptorProto, str]] = []

    def skip_statement(j: int) -> int:
        while toks[j] != ";":
            j += 1
        return j + 1

    while i < len(toks):
        t = toks[i]
        if t == "syntax":
            i = skip_statement(i)
        elif t == "package":
            package = toks[i + 1]
            fdp.package = package
            i = skip_statement(i)
        elif t == "import":
            fdp.dependency.append(toks[i + 1].strip('"'))
            i = skip_statement(i)
        elif t == "enum":
            e = fdp.enum_type.add(name=toks[i + 1])
            enums.add(f"{package}.{e.name}")
            i += 3  # enum NAME {
            while toks[i] != "}":
                e.value.add(name=toks[i], number=int(toks[i + 2]))
                i = skip_statement(i)
            i += 1
        elif t == "message":
            m = fdp.message_type.add(name=toks[i + 1])
            i += 3  # message NAME {
            while toks[i] != "}":
                if toks[i] == "reserved":
                    i = skip_statement(i)
                    continue
                label = _F.LABEL_OPTIONAL
                optional = False
                if toks[i] in ("optional", "repeated"):
                    optional = toks[i] == "optional"
                    if toks[i] == "repeated":
                        label = _F.LABEL_REPEATED
                    i += 1
                ftype, fname, number = toks[i], toks[i + 1], int(toks[i + 3])
                f = m.field.add(name=fname, number=number, label=label)
                f.json_name = re.sub(r"_(\w)", lambda mm: mm.group(1).upper(), fname)
                if ftype in _SCALARS:
                    f.type = _SCALARS[ftype]
                else:
                    pending.append((f, ftype if "." in ftype else f"{package}.{ftype}"))
                if optional:  # proto3 optional = a synthetic one-field oneof
                    f.proto3_optional = True
                    f.oneof_index = len(m.oneof_decl)
                    m.oneof_decl.add(name=f"_{fname}")
                i = skip_statement(i)
            i += 1
        else:
            raise ValueError(f"{name}: unsupported proto token {t!r}")
    # Resolve type names once the whole file (and its imports) are known.
    for f, full in pending:
        f.type_name = "." + full
        f.type = _F.TYPE_ENUM if full in enums else _F.TYPE_MESSAGE
    return fdp


def _build() -> SimpleNamespace:
    pool = descriptor_pool.DescriptorPool()
    enums: set[str] = set()
    classes: dict[str, object] = {}
    for fname in _FILES:
        fdp = _parse(fname, (_PROTO_DIR / fname).read_text(), enums)
        pool.Add(fdp)
        fd = pool.FindFileByName(fname)
        for mname, mdesc in fd.message_types_by_name.items():
            classes[mname] = message_factory.GetMessageClass(mdesc)
        for edesc in fd.enum_types_by_name.values():
            for v in edesc.values:
                classes[v.name] = v.number
    return SimpleNamespace(**classes)


pb = _build()
