"""Contract values more than one service (or a client) uses, defined once and derived from the protos where
the protos define them."""

from __future__ import annotations

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

# The option letters of a multiple-choice item, in order: HAIC's items have four options (section 3.3).
OPTION_LETTERS = "ABCD"


def category_slug(category: int) -> str:
    """The slug of a QA category; "unspecified" for the proto's zero value or a value unknown here."""
    return CATEGORY_SLUGS.get(category, "unspecified")
