"""Kinematics on real pose tracks recorded from the pose stage (tests/captioner/record_fixture.py).

The juggler (samples/juggle_one_person.mp4) keeps a football up with both feet for 10 s and ends with
a high kick of his right leg while turning; he never walks, jumps, squats or raises an arm. At 4 fps
the dense tracks catch the touches whose sampled foot lift clears standing jitter: his left foot at
2.5, 3.75 and 7.25 s, then the right-leg kick at 8.75 to 9 s. The two-person composite
(tests/captioner/two_people.py) shows him twice: as filmed up to 7.8 s, and mirrored 2.5 s ahead,
where mirroring swaps his legs.
"""

from __future__ import annotations

import pytest

from haic.v1 import events_pb2
from services.captioner.kinematics import KICK_LIFT, detect_actions, detect_interactions
from tests.captioner.record_fixture import FIXTURE, TWO_PEOPLE_FIXTURE


def _verdict(path) -> events_pb2.ClipVerdict:
    return events_pb2.ClipVerdict.FromString(path.read_bytes())


def _summary(actions: list[events_pb2.Action]) -> list[tuple[str, int, float, float]]:
    return [(a.verb_phrase, a.repetitions, a.start_s, a.end_s) for a in actions]


def _check_evidence(action: events_pb2.Action, span: events_pb2.ClipSpan) -> None:
    ev = action.evidence
    assert span.start_s <= ev.start_s == action.start_s <= ev.end_s == action.end_s <= span.end_s, action
    assert ev.signals["peaks"] == action.repetitions
    assert ev.signals["min_peak_lift_torso"] > KICK_LIFT, action


def test_the_juggler_kicks_with_both_legs_and_does_nothing_else() -> None:
    clip = _verdict(FIXTURE)
    [track] = clip.dense_tracks
    actions = detect_actions(track, clip.info.width, clip.info.height)
    assert _summary(actions) == [
        ("kicks with their left leg three times", 3, 2.5, 7.25),
        ("kicks with their right leg", 1, 8.75, 9.0),
    ]
    for action in actions:
        _check_evidence(action, clip.span)
    left, right = actions
    assert left.body_part == "left leg" and right.body_part == "right leg"
    # The touches stay below the standing knee; the final kick goes above it.
    assert left.evidence.signals["ankle_above_knee_torso"] < 0 < right.evidence.signals["ankle_above_knee_torso"]


def test_both_people_of_the_composite_get_their_kicks_legs_swapped_by_the_mirror() -> None:
    clip = _verdict(TWO_PEOPLE_FIXTURE)
    assert len(clip.dense_tracks) == 2
    by_place = sorted(clip.dense_tracks, key=lambda t: t.samples[0].box.x1)  # as filmed on the left
    filmed, mirrored = (detect_actions(t, clip.info.width, clip.info.height) for t in by_place)
    # As filmed: the same left-foot touches as the juggler's own clip (it ends at 7.8 s, before his
    # right-leg kick).
    assert _summary(filmed) == [("kicks with their left leg three times", 3, 2.5, 7.25)]
    # Mirrored and 2.5 s ahead: his left-foot touches at 3.75 and 7.25 s become right-leg kicks at 1.25
    # and 4.75 s (the one at 2.5 s falls on the clip's first sample, where no rise can be measured), his
    # right-leg kick at 8.75 s a left-leg kick at 6.25 s.
    assert _summary(mirrored) == [
        ("kicks with their right leg twice", 2, 1.25, 4.75),
        ("kicks with their left leg", 1, 6.25, 6.5),
    ]
    for action in filmed + mirrored:
        _check_evidence(action, clip.span)
    # Two men juggling side by side neither approach, part, touch nor follow each other.
    interactions = detect_interactions(list(clip.dense_tracks), {}, clip.info.width, clip.info.height)
    assert interactions == [], interactions


@pytest.mark.parametrize("fixture", [FIXTURE, TWO_PEOPLE_FIXTURE], ids=["juggle", "two_people"])
def test_real_tracks_give_no_locomotion_jump_posture_or_arm_action(fixture) -> None:
    clip = _verdict(fixture)
    for track in clip.dense_tracks:
        verbs = {a.verb_phrase.split()[0] for a in detect_actions(track, clip.info.width, clip.info.height)}
        assert verbs == {"kicks"}, verbs
