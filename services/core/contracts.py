"""Contract values more than one service (or a client) uses, defined once and derived from the protos where
the protos define them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from pydantic import BaseModel, create_model

from haic.v1 import events_pb2

_CATEGORY_PREFIX = "QA_CATEGORY_"

# QA categories by proto value, as the slugs configuration, metrics and exports name them
# (QA_CATEGORY_ACTION_DETAILS -> "action_details").
CATEGORY_SLUGS: dict[int, str] = {
    value: name.removeprefix(_CATEGORY_PREFIX).lower()
    for name, value in events_pb2.QACategory.items()
    if value != events_pb2.QA_CATEGORY_UNSPECIFIED
}
CATEGORY_BY_SLUG: dict[str, int] = {slug: value for value, slug in CATEGORY_SLUGS.items()}


_INTERACTION_PREFIX = "INTERACTION_KIND_"


def interaction_words(kind: int) -> str:
    """The words of a proto InteractionKind, as Interaction.kind carries them on the wire
    (INTERACTION_KIND_MOVING_APART -> "moving apart")."""
    return events_pb2.InteractionKind.Name(kind).removeprefix(_INTERACTION_PREFIX).lower().replace("_", " ")


# Interaction.kind's vocabulary from the proto enum, in its order.
INTERACTION_KIND_WORDS: tuple[str, ...] = tuple(
    interaction_words(value)
    for value in events_pb2.InteractionKind.values()
    if value != events_pb2.INTERACTION_KIND_UNSPECIFIED
)


class InteractionKind(StrEnum):
    """What two people do together: the proto's InteractionKind by its words (a string on the wire, the text
    captions and QA phrase from it), for the kinematics that find it, the renderer, the QA generator and its
    checks. Spelled out for the type checker; checked against the proto below, so the two cannot drift."""

    APPROACHING = interaction_words(events_pb2.INTERACTION_KIND_APPROACHING)
    MOVING_APART = interaction_words(events_pb2.INTERACTION_KIND_MOVING_APART)
    TOUCHING = interaction_words(events_pb2.INTERACTION_KIND_TOUCHING)
    HUGGING = interaction_words(events_pb2.INTERACTION_KIND_HUGGING)
    FACING_EACH_OTHER = interaction_words(events_pb2.INTERACTION_KIND_FACING_EACH_OTHER)
    FOLLOWING = interaction_words(events_pb2.INTERACTION_KIND_FOLLOWING)


if tuple(InteractionKind) != INTERACTION_KIND_WORDS:  # a kind added to the proto and not here, or the reverse
    raise ImportError(f"InteractionKind {tuple(InteractionKind)} differs from the proto's {INTERACTION_KIND_WORDS}")


# An action lasting at least this share of its clip is told "throughout the clip": by the captioner's text
# and by the QA generator's temporal options, which must agree on it.
THROUGHOUT_SHARE = 0.6

# The option letters of a multiple-choice item, in order: HAIC's items have four options (section 3.3).
OPTION_LETTERS = "ABCD"


_SCALAR_TYPES: dict[int, type] = {
    FieldDescriptor.CPPTYPE_INT32: int,
    FieldDescriptor.CPPTYPE_INT64: int,
    FieldDescriptor.CPPTYPE_UINT32: int,
    FieldDescriptor.CPPTYPE_UINT64: int,
    FieldDescriptor.CPPTYPE_DOUBLE: float,
    FieldDescriptor.CPPTYPE_FLOAT: float,
    FieldDescriptor.CPPTYPE_BOOL: bool,
    FieldDescriptor.CPPTYPE_STRING: str,
}


def scalar_fields(message: type[Message]) -> dict[str, type]:
    """The scalar fields of a flat proto message, in declaration order, with their Python types."""
    return {field.name: _SCALAR_TYPES[field.cpp_type] for field in message.DESCRIPTOR.fields}


def pydantic_model_of(message: type[Message]) -> type[BaseModel]:
    """A pydantic model with the fields of a flat proto message: an HTTP schema that cannot drift from it."""
    fields: dict[str, Any] = {name: (kind, ...) for name, kind in scalar_fields(message).items()}
    return create_model(f"{message.DESCRIPTOR.name}Out", **fields)


def category_slug(category: int) -> str:
    """The slug of a QA category; "unspecified" for the proto's zero value or a value unknown here."""
    return CATEGORY_SLUGS.get(category, "unspecified")
