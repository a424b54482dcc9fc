"""Held states, steps forward and camera drift: what a person who barely moves is doing.

Real tracks are whole-shot pose verdicts recorded by the quality bench (bench/curation_quality.py) from
the shared corpus: three_people_standing_still.gif (three people, legs out of view, who step towards the
camera and then stand still), worker_walks_warehouse.gif (a man walking off to the left),
store_aisle_three_shoppers.gif (a woman walking in) and man_chroma_key_camera_leaves.mp4 (a man standing
while the camera moves away: his box drifts left, his legs are out of view).
"""

from __future__ import annotations

from pathlib import Path

from haic.v1 import events_pb2
from services.captioner.kinematics.actions import detect_actions
from services.captioner.kinematics.posture import POSTURE
from tests.captioner import RULES
from tests.captioner.test_kinematics import FPS, H, Person, W, make_track

DATA = Path(__file__).parent / "data"


def _actions(name: str) -> list[list[events_pb2.Action]]:
    clip = events_pb2.ClipVerdict.FromString((DATA / name).read_bytes())
    tracks = sorted(clip.dense_tracks or clip.tracks, key=lambda t: t.track_id)
    return [detect_actions(t, clip.info.width, clip.info.height, RULES) for t in tracks if len(t.samples) >= 4]


def test_a_standing_person_drifted_by_the_camera_stands_still_and_does_not_walk() -> None:
    # The whole body slides left at 300 px/s (a walk's speed) but the feet keep their spread.
    actions = detect_actions(make_track(24, lambda i: Person(cx=1600 - 300 * i / FPS)), W, H, RULES)
    assert [(a.verb_phrase, a.body_part) for a in actions] == [("stands still", POSTURE)]


def test_the_same_drift_with_striding_legs_is_a_walk() -> None:
    actions = detect_actions(make_track(24, lambda i: Person(cx=1600 - 300 * i / FPS), striding=True), W, H, RULES)
    assert [a.verb_phrase for a in actions] == ["walks to the left"]


def test_people_who_step_forward_then_hold_still_are_told_so() -> None:
    people = _actions("three_people_still_shot.binpb")
    assert len(people) == 3
    for actions in people:
        # Legs out of view: no posture is claimed, but the held stillness is, after any step.
        state = [a for a in actions if a.body_part == POSTURE]
        assert [a.verb_phrase for a in state] == ["stays still"]
        assert not any(a.verb_phrase.startswith(("walks", "runs")) for a in actions)
    stepped = [next(a for a in actions if a.verb_phrase == "steps forward") for actions in people]
    for step, actions in zip(stepped, people, strict=True):
        sig = step.evidence.signals
        # the woman on the right has a shoulder behind the man until her step: her head's width tells it
        width = sig["shoulder_width_ratio"] if "shoulder_width_ratio" in sig else sig["ear_width_ratio"]
        assert width > 1.15 and sig["neck_height_ratio"] > 1.15
        assert step.end_s - step.start_s <= 2.5
        state = next(a for a in actions if a.body_part == POSTURE)
        assert state.start_s >= step.end_s  # the stillness is told from the end of the step


def test_camera_motion_over_a_standing_man_is_no_walk() -> None:
    [man] = _actions("chroma_key_camera_leaves_shot.binpb")
    assert not any(a.verb_phrase.startswith(("walks", "runs", "steps")) for a in man)


def test_real_walkers_still_walk() -> None:
    [worker] = _actions("worker_walks_shot.binpb")
    assert any(a.verb_phrase.startswith("walks to the left") for a in worker)
    shoppers = _actions("store_aisle_shot.binpb")
    walking = [a for actions in shoppers for a in actions if a.verb_phrase.startswith("walks")]
    assert len(walking) == 1  # the woman walking in; the two at the shelf do not walk
    assert walking[0].evidence.signals["leg_spread_change_torso"] >= 0.5  # the legs step
    assert worker[0].evidence.signals["leg_spread_change_torso"] >= 0.5
