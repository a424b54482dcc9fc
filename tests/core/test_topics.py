"""The topics' contract: the message each carries, and the retention each is kept with."""

from __future__ import annotations

import pytest

from haic.v1 import events_pb2
from services.core import topics


def test_every_topic_has_its_message_type() -> None:
    assert topics.message_type(topics.VIDEOS) is events_pb2.VideoUploaded
    assert topics.message_type(topics.CLIPS_REJECTED) is events_pb2.ClipVerdict
    assert set(topics.ALL_TOPICS) == set(topics.DATASET_TOPICS) | {topics.DEADLETTER}
    with pytest.raises(topics.UnknownTopicError):
        topics.message_type("haic.unknown.v1")


def test_the_dataset_is_kept_forever_and_dead_letters_expire() -> None:
    for topic in topics.DATASET_TOPICS:
        assert topics.topic_config(topic, 1000) == {"retention.ms": "-1", "retention.bytes": "-1"}
    assert topics.topic_config(topics.DEADLETTER, 86_400_000) == {"retention.ms": "86400000", "retention.bytes": "-1"}
    with pytest.raises(topics.UnknownTopicError):
        topics.topic_config("haic.unknown.v1", 1000)
