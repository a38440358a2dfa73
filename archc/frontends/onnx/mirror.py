"""Proto3 mirrors of ONNX's messages: a few of their fields, under ONNX's own field numbers.

Parsing a model's bytes with a mirror reads only the mirrored fields and skips the rest in
C, so a pass over every node's names or attributes costs one parse instead of a Python-level
read per field. Two readers use one: the check that names are UTF-8 (proto3 validates strings
while parsing) and the import's rows (attributes declared as ``bytes`` come back as the file's
own bytes).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import onnx

__all__ = ["PRESENCE", "Fields", "mirror_class"]

#: message -> its mirrored fields, each (name, element): None for a string, "bytes" for raw
#: bytes, :data:`PRESENCE` for a field read only for whether the message holds it, else the name of
#: another mirrored message
Fields = Mapping[str, tuple[tuple[str, "str | None"], ...]]

#: a field mirrored as one empty message, singular even where ONNX's is repeated (each occurrence merges
#: into it): ``HasField`` tells whether the message holds the field, without a container or a count
PRESENCE = "presence"
_PRESENT = "Present"  # (the empty message such a field holds)


def mirror_class(package: str, fields: Fields) -> Any:
    """The message class of ``package``'s mirror of ``ModelProto`` holding ``fields``; each field
    keeps ONNX's number and whether it is repeated."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    kind = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package, syntax="proto3")
    proto.message_type.add(name=_PRESENT)
    for message, message_fields in fields.items():
        mirror = proto.message_type.add(name=message)
        for name, element in message_fields:
            original = getattr(onnx, message).DESCRIPTOR.fields_by_name[name]
            field = mirror.field.add(name=name, number=original.number, label=kind.LABEL_REPEATED
                                     if _repeated(original) and element != PRESENCE else kind.LABEL_OPTIONAL)
            if element is None:
                field.type = kind.TYPE_STRING
            elif element == "bytes":
                field.type = kind.TYPE_BYTES
            else:
                field.type, field.type_name = kind.TYPE_MESSAGE, f".{package}.{_PRESENT if element == PRESENCE else element}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.ModelProto"))


def _repeated(field: Any) -> bool:
    """Whether a protobuf field descriptor is repeated (``is_repeated`` in protobuf 6+, ``label`` before)."""
    repeated = getattr(field, "is_repeated", None)
    return bool(repeated) if repeated is not None else field.label == field.LABEL_REPEATED
