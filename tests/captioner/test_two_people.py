"""The pose-grounded captioner on the two-person composite (tests/captioner/two_people.py): two men
told apart by the colours of their garments, each with his own evidence-backed actions, judged."""

from __future__ import annotations

from pathlib import Path

import pytest

from haic.v1 import events_pb2
from services.captioner.service import ClipCaptioner
from services.core.storage import LocalStorage
from services.core.video import probe
from tests.captioner.record_fixture import TWO_PEOPLE_FIXTURE
from tests.captioner.two_people import OFFSET_S, two_people_clip


@pytest.fixture(scope="module")
def video() -> Path:
    return two_people_clip()  # built once per recipe into .haic/test-videos (about 15 s on 2 cores)


@pytest.fixture
def clip(video: Path) -> events_pb2.ClipVerdict:
    verdict = events_pb2.ClipVerdict.FromString(TWO_PEOPLE_FIXTURE.read_bytes())
    verdict.storage_uri = video.as_uri()  # recorded in another checkout
    return verdict


def test_the_composite_is_one_long_enough_shot_at_the_source_size(video: Path) -> None:
    info = probe(video)
    assert (info.width, info.height, info.fps) == (1280, 720, 24.0)
    assert info.duration_s == pytest.approx(10.29 - OFFSET_S, abs=0.05)  # within HAIC's 5 to 20 s


def test_two_subjects_told_apart_by_garment_colour_each_with_evidence_backed_actions(
    make_settings, video: Path, clip: events_pb2.ClipVerdict
) -> None:
    captioner = ClipCaptioner(make_settings(storage_url=str(video.parent)), LocalStorage(video.parent))
    caption = captioner.caption(clip)
    assert len(caption.subjects) == 2
    by_place = sorted(
        caption.subjects, key=lambda s: next(t for t in clip.dense_tracks if t.track_id == s.track_id).samples[0].box.x1
    )
    colours = [{g.item: g.color for g in s.attributes.clothing} for s in by_place]
    # As filmed: blue-gray shirt, navy trousers. The recoloured copy: red shirt, dark red trousers.
    assert colours == [{"top": "gray", "trousers": "navy"}, {"top": "red", "trousers": "red"}]
    labels = [s.label for s in by_place]
    assert labels == ["the person in the gray top and navy trousers", "the person in the red top and red trousers"]
    assert not any(word in label for label in labels for word in ("left", "right", "first", "second"))
    for subject in caption.subjects:
        assert subject.actions, subject
        starts = [a.start_s for a in subject.actions]
        assert starts == sorted(starts)
        for action in subject.actions:
            assert clip.span.start_s <= action.evidence.start_s <= action.evidence.end_s <= clip.span.end_s
            assert action.evidence.signals, action
    assert caption.text.startswith("The main characters are two people.")
    for label in labels:
        assert label.removeprefix("the person in the ") in caption.text
    assert caption.judgement.judge == "rules"
    assert caption.judgement.passed, list(caption.judgement.reasons)
