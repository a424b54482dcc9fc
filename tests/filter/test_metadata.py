"""Metadata filter: the resolution rule and the description verb check (HAIC section 3.1)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from haic.v1 import events_pb2
from services.core.settings import Settings
from services.filter.metadata import STAGE, check_description, check_metadata, check_resolution, verb_checker

WITH_VERB = [
    "A man juggles a football",
    "a woman sings",
    "she waves at the camera",
    "kids running on the beach",
    "man jumping",
    # the tagger reads these "-s" verbs as nouns; the verb-forcing re-tag recovers them
    "a man waves",
    "A woman sings.",
    "Person surfs",
    # ... also where the first context still reads a noun, or the subject is tagged as an adjective
    "A man in a hat gestures on a dark stage.",
    "A cockatoo moves on a perch.",
    # a verb after the plural object of a preposition in the subject ("Crowd of people"), whose head
    # is singular
    "Crowd of people cheers at a concert.",
    "A girl in headphones sings along",
    # a subject the tagger reads as an adjective or an interjection, then an object with a determiner
    "Mechanic repairs a car engine",
    "Boy waves goodbye from a car window",
    # "-ing" after a determined noun, not modifying a noun; a base form after a plural subject
    "Side view of a horse galloping",
    "Silhouette of a runner jogging at dawn",
    "Friends toast with champagne",
    # main verbs have and do, told from auxiliaries by the parser
    "she does a flip",
]
WITHOUT_VERB = [
    "a red car",
    "sunset over the sea",
    "beautiful mountains",
    "the city at night",
    "the red waves",
    "is",
    "they are",
    "there are people on the beach",
    # an adjective keeps the "-s" word in its noun phrase; "-ing" before the noun it modifies
    "Seamless loop of colorful shapes",
    "Business meeting in a conference room",
    "Football training session",
]


@pytest.mark.parametrize("text", WITH_VERB)
def test_descriptions_with_a_verb(text: str) -> None:
    assert verb_checker().analyse(text).has_verb


@pytest.mark.parametrize("text", WITHOUT_VERB)
def test_descriptions_without_a_verb(text: str) -> None:
    analysis = verb_checker().analyse(text)
    assert not analysis.has_verb, analysis.verbs


def test_recovered_verbs_are_reported_apart() -> None:
    analysis = verb_checker().analyse("a man waves")
    assert analysis.recovered == ("waves",)
    assert verb_checker().analyse("A man juggles a football").recovered == ()
    assert verb_checker().analyse("Crowd of people cheers at a concert.").recovered == ("cheers",)
    assert verb_checker().analyse("Side view of a horse galloping").recovered == ("galloping",)


def test_no_verb_rejection_names_the_description(make_settings: Callable[..., Settings]) -> None:
    rejection = check_description("sunset over the sea.", make_settings())
    assert rejection is not None
    assert rejection.reason_code == "no_verb"
    assert "sunset over the sea." in rejection.reason
    assert rejection.values == {"tokens": 4.0}  # the full stop is not a token that counts


def test_verb_rule_can_be_switched_off(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(require_description_verb=False, strict_description=True)
    assert check_description("a red car", settings) is None
    assert check_description("", settings) is None


@pytest.mark.parametrize("description", ["", "   "])
def test_missing_description_passes_unless_strict(make_settings: Callable[..., Settings], description: str) -> None:
    assert check_description(description, make_settings()) is None
    rejection = check_description(description, make_settings(strict_description=True))
    assert rejection is not None
    assert rejection.reason_code == "missing_description"


@pytest.mark.parametrize(
    ("width", "height", "rejected"),
    [(1280, 720, False), (640, 360, False), (640, 359, True), (416, 720, False), (359, 1920, True)],
)
def test_resolution_rule_uses_the_short_side(
    make_settings: Callable[..., Settings], width: int, height: int, rejected: bool
) -> None:
    rejection = check_resolution(width, height, make_settings())
    assert (rejection is not None) == rejected
    if rejection is not None:
        short_side = min(width, height)
        assert rejection.reason_code == "low_resolution"
        assert rejection.values == {
            "width": width,
            "height": height,
            "short_side": short_side,
            "min_short_side_px": 360,
        }
        assert f"{short_side} px" in rejection.reason


def test_resolution_threshold_comes_from_settings(make_settings: Callable[..., Settings]) -> None:
    assert check_resolution(1280, 720, make_settings(min_short_side_px=1080)) is not None
    assert check_resolution(1280, 720, make_settings(min_short_side_px=720)) is None


def test_video_level_verdict(make_settings: Callable[..., Settings]) -> None:
    info = events_pb2.VideoInfo(width=1280, height=720, fps=24.0, duration_s=10.0)
    uploaded = events_pb2.VideoUploaded(
        video_id="vid_meta", storage_uri="file:///store/vid_meta.mp4", description="beautiful mountains", info=info
    )
    verdict = check_metadata(uploaded, info, make_settings())
    assert verdict is not None
    assert verdict.verdict == events_pb2.VERDICT_REJECTED
    assert (verdict.video_id, verdict.stage, verdict.reason_code) == ("vid_meta", STAGE, "no_verb")
    assert not verdict.HasField("span") and verdict.span.clip_count == 0
    assert verdict.storage_uri == uploaded.storage_uri
    assert verdict.info == info
    assert verdict.description == "beautiful mountains"
    assert verdict.produced_at.seconds > 0

    uploaded.description = "a man waves at the camera"
    assert check_metadata(uploaded, info, make_settings()) is None
    low = check_metadata(uploaded, info, make_settings(min_short_side_px=1000))
    assert low is not None and low.reason_code == "low_resolution"
