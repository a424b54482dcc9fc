"""Kinematic actions and interactions on synthetic skeletons: a standing person whose joints we move."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from haic.v1 import events_pb2
from services.captioner.kinematics.actions import detect_actions
from services.captioner.kinematics.interactions import detect_interactions
from services.captioner.kinematics.posture import POSTURE
from services.captioner.kinematics.signals import KinematicsInputError
from services.pose.contract import COCO_KEYPOINTS
from tests.captioner import RULES

FPS = 4.0
W, H = 1920, 1080
Pose = dict[str, tuple[float, float]]

# Joint heights as fractions of body height above the feet, and x offsets (fractions of body height)
# towards the person's LEFT; facing the camera the person's left is the image's right.
_FRAME: dict[str, tuple[float, float]] = {
    "nose": (0.93, 0.0),
    "left_eye": (0.95, 0.02),
    "right_eye": (0.95, -0.02),
    "left_ear": (0.94, 0.05),
    "right_ear": (0.94, -0.05),
    "left_shoulder": (0.82, 0.12),
    "right_shoulder": (0.82, -0.12),
    "left_elbow": (0.66, 0.14),
    "right_elbow": (0.66, -0.14),
    "left_wrist": (0.52, 0.15),
    "right_wrist": (0.52, -0.15),
    "left_hip": (0.52, 0.07),
    "right_hip": (0.52, -0.07),
    "left_knee": (0.28, 0.07),
    "right_knee": (0.28, -0.07),
    "left_ankle": (0.04, 0.07),
    "right_ankle": (0.04, -0.07),
}


class Person:
    """A standing person: feet at (cx, ground), `height` pixels tall, facing the camera (facing=1) or away (-1)."""

    def __init__(self, cx: float = 960, ground: float = 900, height: float = 600, facing: float = 1.0) -> None:
        self.cx, self.ground, self.height, self.facing = cx, ground, height, facing
        self.moved: Pose = {}

    def at(self, name: str) -> tuple[float, float]:
        up, left = _FRAME[name]
        # Facing the camera the person's left is image right; `facing` in (-1, 1) is a partial turn.
        return self.cx + left * self.facing * self.height, self.ground - up * self.height

    def raise_arm(self, side: str) -> None:
        sx, sy = self.at(f"{side}_shoulder")
        self.moved[f"{side}_elbow"] = (sx, sy - 0.12 * self.height)
        self.moved[f"{side}_wrist"] = (sx, sy - 0.25 * self.height)

    def sample(self, t: float, rng: np.random.Generator) -> events_pb2.PoseSample:
        kps = []
        for name in COCO_KEYPOINTS:
            x, y = self.moved.get(name, self.at(name))
            jitter = rng.normal(0, 0.003 * self.height, 2)  # detector noise: well below every threshold
            # The face is not visible from behind.
            score = 0.05 if self.facing < 0 and name in ("nose", "left_eye", "right_eye") else 0.9
            kps.append(events_pb2.Keypoint(x=x + jitter[0], y=y + jitter[1], score=score))
        ys = [k.y for k in kps]
        box = events_pb2.Box(
            x1=self.cx - 0.2 * self.height, y1=min(ys) - 0.07 * self.height,
            x2=self.cx + 0.2 * self.height, y2=max(ys) + 0.04 * self.height, score=0.9,
        )  # fmt: skip
        return events_pb2.PoseSample(t_s=t, box=box, keypoints=kps)


def make_track(
    n: int, pose_at: Callable[[int], Person], track_id: int = 1, seed: int = 0, striding: bool = False
) -> events_pb2.PersonTrack:
    """`striding`: the feet pass each other at every sample (a walker's legs), where not moved otherwise."""
    rng = np.random.default_rng(seed)
    return events_pb2.PersonTrack(
        track_id=track_id, samples=[_stride(pose_at(i), i, striding).sample(i / FPS, rng) for i in range(n)]
    )


def named(actions: list[events_pb2.Action]) -> list[events_pb2.Action]:
    """The actions other than the held posture, which is told next to arm and head movements."""
    return [a for a in actions if a.body_part != POSTURE]


def _stride(p: Person, i: int, striding: bool) -> Person:
    if striding:
        reach = (0.1 if i % 2 else -0.1) * p.height
        for name, sign in (("left_ankle", 1), ("right_ankle", -1)):
            x, y = p.at(name)
            p.moved.setdefault(name, (x + sign * reach, y))
    return p


def raised_at(frames: set[int], side: str) -> Callable[[int], Person]:
    def pose(i: int) -> Person:
        p = Person()
        if i in frames:
            p.raise_arm(side)
        return p

    return pose


RAISES = [range(8, 12), range(20, 24), range(32, 36)]


def test_right_arm_raised_three_times() -> None:
    frames = {i for r in RAISES for i in r}
    actions = named(detect_actions(make_track(48, raised_at(frames, "right")), W, H, RULES))
    assert [a.verb_phrase for a in actions] == ["raises their right arm three times"]
    a = actions[0]
    assert a.repetitions == 3 and a.body_part == "right arm"
    assert a.start_s == pytest.approx(8 / FPS) and a.end_s == pytest.approx(35 / FPS)
    assert a.evidence.signals["peaks"] == 3 and a.evidence.signals["wrist_above_shoulder_px"] > 0


def test_left_arm_is_not_the_right_arm() -> None:
    frames = {i for r in RAISES[:2] for i in r}
    actions = named(detect_actions(make_track(48, raised_at(frames, "left")), W, H, RULES))
    assert [a.verb_phrase for a in actions] == ["raises their left arm twice"]
    assert actions[0].repetitions == 2


def test_missing_samples_and_low_confidence_keypoints_do_not_break_counts() -> None:
    frames = {i for r in RAISES for i in r}
    track = make_track(48, raised_at(frames, "right"))
    kept = [s for i, s in enumerate(track.samples) if i % 5 != 3]  # every fifth sample lost
    for s in kept[::4]:
        s.keypoints[COCO_KEYPOINTS.index("right_wrist")].score = 0.1  # below the default threshold
    del track.samples[:]
    track.samples.extend(kept)
    actions = named(detect_actions(track, W, H, RULES))
    assert [a.repetitions for a in actions] == [3]


def test_still_person_gives_no_action_only_their_posture() -> None:
    [posture] = detect_actions(make_track(40, lambda i: Person()), W, H, RULES)
    assert (posture.verb_phrase, posture.body_part) == ("stands still", POSTURE)
    assert posture.evidence.signals["share"] == 1.0


def test_walking_left_is_left() -> None:
    # 150 px/s at 600 px tall = 0.25 body heights/s would be borderline; 300 px/s is a clear walk.
    actions = detect_actions(make_track(24, lambda i: Person(cx=1600 - 300 * i / FPS), striding=True), W, H, RULES)
    assert [(a.verb_phrase, a.direction) for a in actions] == [("walks to the left", "left")]
    assert actions[0].evidence.signals["displacement_px"] < 0


def test_running_right() -> None:
    actions = detect_actions(
        make_track(12, lambda i: Person(cx=200 + 1000 * i / FPS, height=500), striding=True), W, H, RULES
    )
    assert [(a.verb_phrase, a.direction) for a in actions] == [("runs to the right", "right")]


def test_walking_towards_the_camera() -> None:
    # Coming closer: the body grows (250 -> 600 px) and the feet move down the frame.
    def pose(i: int) -> Person:
        f = i / 23
        return Person(ground=600 + 300 * f, height=250 + 350 * f)

    actions = detect_actions(make_track(24, pose), W, H, RULES)
    assert [(a.verb_phrase, a.direction) for a in actions] == [("walks towards the camera", "towards the camera")]
    assert actions[0].evidence.signals["box_height_ratio"] > 1.5


def test_jumps_are_counted() -> None:
    airborne = {6, 7, 14, 15, 22, 23}

    def pose(i: int) -> Person:
        return Person(ground=900 - (0.15 * 600 if i in airborne else 0))

    actions = detect_actions(make_track(32, pose), W, H, RULES)
    assert [a.verb_phrase for a in actions] == ["jumps three times"]
    assert actions[0].repetitions == 3 and actions[0].start_s == pytest.approx(6 / FPS)


def test_hips_that_rise_over_unseen_feet_are_no_jump() -> None:
    # The same three jumps with both ankles unseen (a dark stage, a desk in front): the hips alone rise as
    # much when a hip keypoint slips or a seated person leans, so no jump is told.
    airborne = {6, 7, 14, 15, 22, 23}
    track = make_track(32, lambda i: Person(ground=900 - (0.15 * 600 if i in airborne else 0)))
    ankles = [COCO_KEYPOINTS.index(name) for name in ("left_ankle", "right_ankle")]
    for sample in track.samples:
        for j in ankles:
            sample.keypoints[j].score = 0.05
    assert not any(a.verb_phrase.startswith("jumps") for a in detect_actions(track, W, H, RULES))
    # one foot seen rising with the hips is a jump again
    for sample in track.samples:
        sample.keypoints[ankles[0]].score = 0.9
    assert [a.verb_phrase for a in named(detect_actions(track, W, H, RULES))] == ["jumps three times"]


def test_turning_around() -> None:
    # Facing the camera for 2 s, a one-second turn (shoulders converge, then swap), facing away for 2 s.
    facing = [1.0] * 8 + [0.5, 0.0, -0.5] + [-1.0] * 9
    actions = detect_actions(make_track(len(facing), lambda i: Person(facing=facing[i])), W, H, RULES)
    assert [a.verb_phrase for a in actions] == ["turns around"]
    assert 1.75 <= actions[0].start_s < actions[0].end_s <= 3.0
    assert actions[0].evidence.signals["facing_camera_after"] == 0


def test_approaching_then_touching() -> None:
    # A walks right, B walks left (150 px/s at 400 px tall), for 4 s; both stop,
    # and A reaches out with their left hand to B's shoulder.
    def a(i: int) -> Person:
        p = Person(cx=300 + 150 * min(i, 16) / FPS, height=400)
        if i >= 20:
            p.moved["left_wrist"] = (b(i).at("right_shoulder")[0] + 10, b(i).at("right_shoulder")[1] + 20)
        return p

    def b(i: int) -> Person:
        return Person(cx=1700 - 150 * min(i, 16) / FPS, height=400)

    tracks = [
        make_track(28, a, track_id=1, seed=1, striding=True),
        make_track(28, b, track_id=2, seed=2, striding=True),
    ]
    labels = {1: "the man in the red shirt", 2: "the woman in the blue dress"}
    got = detect_interactions(tracks, labels, W, H, RULES)
    kinds = {(x.kind, x.subject_label, x.object_label) for x in got}
    assert ("touching", labels[1], labels[2]) in kinds
    approaching = [x for x in got if x.kind == "approaching"]
    assert len(approaching) == 1 and approaching[0].start_s < 1.0 and approaching[0].end_s >= 3.5
    sig = approaching[0].evidence.signals
    assert sig["distance_after_body_heights"] < sig["distance_before_body_heights"]
    touch = next(x for x in got if x.kind == "touching")
    assert touch.start_s == pytest.approx(5.0)
    assert "moving apart" not in {x.kind for x in got}
    # Each walker is moving, and in opposite image directions.
    assert [x.direction for x in detect_actions(tracks[0], W, H, RULES)] == ["right"]
    assert [x.direction for x in detect_actions(tracks[1], W, H, RULES)] == ["left"]


def test_following() -> None:
    # The leader walks right; the follower walks the same path 1.5 s behind.
    tracks = [
        make_track(24, lambda i: Person(cx=600 + 200 * i / FPS), track_id=1),
        make_track(24, lambda i: Person(cx=300 + 200 * i / FPS), track_id=2, seed=3),
    ]
    got = detect_interactions(tracks, {1: "the leader", 2: "the follower"}, W, H, RULES)
    follows = [(x.subject_label, x.object_label) for x in got if x.kind == "following"]
    assert follows == [("the follower", "the leader")]


def test_bad_input_is_a_typed_error() -> None:
    track = make_track(4, lambda i: Person())
    del track.samples[1].keypoints[5:]
    with pytest.raises(KinematicsInputError, match="5 keypoints"):
        detect_actions(track, W, H, RULES)
    with pytest.raises(KinematicsInputError):
        detect_actions(make_track(4, lambda i: Person()), 0, H, RULES)


def test_waving_is_not_a_raise() -> None:
    def pose(i: int) -> Person:
        p = Person()
        if 4 <= i < 20:  # forearm up beside the head, the hand swinging 100 px side to side
            sx, sy = p.at("right_shoulder")
            p.moved["right_elbow"] = (sx - 60, sy - 20)
            p.moved["right_wrist"] = (sx - 60 + (50 if i % 2 else -50), sy - 150)
        return p

    actions = named(detect_actions(make_track(28, pose), W, H, RULES))
    assert [a.verb_phrase for a in actions] == ["waves their right hand"]
    assert actions[0].evidence.signals["strokes"] >= 3


def test_clapping_is_counted_and_not_a_wave() -> None:
    def pose(i: int) -> Person:
        p = Person()
        if 4 <= i < 16:  # hands in front of the chest, meeting on every other sample
            y = p.at("nose")[1] + 150
            d = 10 if i % 2 else 150
            p.moved["right_wrist"], p.moved["left_wrist"] = (p.cx - d, y), (p.cx + d, y)
        return p

    actions = named(detect_actions(make_track(24, pose), W, H, RULES))
    assert [(a.verb_phrase, a.repetitions) for a in actions] == [("claps six times", 6)]


def lowered(frames: set[int]) -> Callable[[int], Person]:
    """Hips (and everything above them) drop to knee height on `frames`: thighs horizontal, torso upright."""

    def pose(i: int) -> Person:
        p = Person()
        if i in frames:
            for name in COCO_KEYPOINTS:
                if not name.endswith(("knee", "ankle")):
                    x, y = p.at(name)
                    p.moved[name] = (x, y + 0.22 * p.height)
        return p

    return pose


def test_squats_sitting_down_and_standing_up() -> None:
    squats = detect_actions(make_track(24, lowered({6, 7, 8, 14, 15, 16})), W, H, RULES)
    assert [(a.verb_phrase, a.repetitions) for a in squats] == [("squats twice", 2)]
    sits = detect_actions(make_track(40, lowered(set(range(10, 40)))), W, H, RULES)
    assert [a.verb_phrase for a in sits] == ["sits down"] and sits[0].end_s == pytest.approx(2.5)
    stands = detect_actions(make_track(40, lowered(set(range(20)))), W, H, RULES)
    assert [a.verb_phrase for a in stands] == ["stands up"] and stands[0].end_s == pytest.approx(5.0)


def test_lying_down() -> None:
    def pose(i: int) -> Person:
        p = Person()
        if i >= 12:  # the skeleton turned 90 degrees onto the floor, head to the image right
            for name in COCO_KEYPOINTS:
                up, left = _FRAME[name]
                p.moved[name] = (p.cx - 300 + up * p.height, p.ground - 60 - left * p.height)
        return p

    track = make_track(24, pose)
    for s in track.samples[12:]:
        s.box.x1, s.box.y1, s.box.x2, s.box.y2 = 640, 740, 1260, 900
    assert [a.verb_phrase for a in detect_actions(track, W, H, RULES)] == ["lies down"]


def test_kick_with_the_right_leg() -> None:
    def pose(i: int) -> Person:
        p = Person()
        if i in (8, 20):  # the right foot swings up above the standing left knee
            knee_y = p.at("left_knee")[1]
            p.moved["right_knee"] = (p.at("right_knee")[0] - 30, knee_y - 80)
            p.moved["right_ankle"] = (p.at("right_ankle")[0] - 100, knee_y - 60)
        return p

    actions = detect_actions(make_track(28, pose), W, H, RULES)
    assert [(a.verb_phrase, a.body_part, a.repetitions) for a in actions] == [
        ("kicks with their right leg twice", "right leg", 2)
    ]


def test_facing_each_other() -> None:
    # Two people in profile, the left one looking right (nose towards image right), the other looking left.
    def profile(cx: float, look: float) -> Callable[[int], Person]:
        def pose(i: int) -> Person:
            p = Person(cx=cx, facing=0.2)
            p.moved["nose"] = (cx + look * 0.06 * p.height, p.at("nose")[1])
            return p

        return pose

    tracks = [make_track(12, profile(600, 1.0), track_id=1), make_track(12, profile(1200, -1.0), track_id=2)]
    got = detect_interactions(tracks, {1: "the man", 2: "the woman"}, W, H, RULES)
    assert [(x.kind, x.start_s, x.end_s) for x in got] == [("facing each other", 0.0, 2.75)]
    # Looking the same way is not facing each other.
    tracks[1] = make_track(12, profile(1200, 1.0), track_id=2)
    assert detect_interactions(tracks, {}, W, H, RULES) == []


def lifted(feet: dict[int, str], lift: float, cx: Callable[[int], float] = lambda i: 960) -> Callable[[int], Person]:
    """The named ankle raised `lift` torso lengths on the given samples (a foot touch: below the other knee)."""

    def pose(i: int) -> Person:
        p = Person(cx=cx(i))
        if i in feet:
            torso = p.at("left_hip")[1] - p.at("left_shoulder")[1]
            x, y = p.at(f"{feet[i]}_ankle")
            p.moved[f"{feet[i]}_ankle"] = (x, y - lift * torso)
        return p

    return pose


def test_foot_touches_below_the_knee_are_kicks_counted_per_leg() -> None:
    # A juggler's touches: one sample each, the foot a third of a torso up, well below the other knee.
    feet = {6: "left", 10: "right", 14: "left", 18: "left"}
    actions = detect_actions(make_track(24, lifted(feet, 0.33)), W, H, RULES)
    assert [(a.verb_phrase, a.repetitions, a.start_s, a.end_s) for a in actions] == [
        ("kicks with their left leg three times", 3, 6 / FPS, 18 / FPS),
        ("kicks with their right leg", 1, 10 / FPS, 10 / FPS),
    ]
    assert actions[0].evidence.signals["ankle_above_knee_torso"] < 0
    assert actions[0].evidence.signals["ankle_lift_torso"] == pytest.approx(0.33, abs=0.05)


def test_a_foot_lifted_within_standing_jitter_is_no_kick() -> None:
    actions = detect_actions(make_track(24, lifted({6: "left", 12: "right"}, 0.1)), W, H, RULES)
    assert [a.verb_phrase for a in actions] == ["stands still"]


def test_striding_feet_are_walking_not_kicks() -> None:
    # Walking left at 300 px/s with each swing foot a third of a torso up: the stride is no kick.
    feet = {i: ("left" if i % 4 == 1 else "right") for i in range(24) if i % 2}
    actions = detect_actions(make_track(24, lifted(feet, 0.33, cx=lambda i: 1600 - 300 * i / FPS)), W, H, RULES)
    assert [a.verb_phrase for a in actions] == ["walks to the left"]


# --- the wider vocabulary (issue 11): stepping, reaching, hands, gestures, head, dancing, parts ---

TORSO = 0.30 * 600  # the synthetic Person's torso length in pixels (shoulders 0.82, hips 0.52 of 600 px)


def bent_arms(p: Person) -> None:
    """A runner's arms: elbows bent at about a right angle, the wrists in front of the chest."""
    for side, sign in (("left", 1.0), ("right", -1.0)):
        sx, sy = p.at(f"{side}_shoulder")
        p.moved[f"{side}_elbow"] = (sx + sign * 0.02 * p.height, sy + 0.16 * p.height)
        p.moved[f"{side}_wrist"] = (sx - sign * 0.02 * p.height, sy + 0.12 * p.height)


def stepping(lift: float, speed: float = 0.0) -> Callable[[int], Person]:
    """The feet take turns off the ground (one per sample, 2 strides a second) by `lift` torso lengths,
    the runner's arms bent; the body moves left at `speed` pixels per second."""

    def pose(i: int) -> Person:
        p = Person(cx=1500 - speed * i / FPS)
        side = "left" if i % 2 else "right"
        x, y = p.at(f"{side}_ankle")
        p.moved[f"{side}_ankle"] = (x, y - lift * TORSO)
        bent_arms(p)
        return p

    return pose


def test_running_towards_a_tracking_camera_is_running_without_crossing_the_frame() -> None:
    # The camera follows her: the body stays the same size at the same place, only the legs' cadence runs.
    actions = detect_actions(make_track(24, stepping(1.0)), W, H, RULES)
    assert [a.verb_phrase for a in actions] == ["runs"]
    sig = actions[0].evidence.signals
    assert sig["strides_per_s"] == pytest.approx(2.0, abs=0.3) and sig["leg_amplitude_torso"] >= 0.9
    assert sig["arm_straightness"] < 0.85  # a runner's bent elbows
    jog = detect_actions(make_track(24, stepping(0.6)), W, H, RULES)
    assert [a.verb_phrase for a in jog] == ["jogs"]


def test_a_running_cadence_makes_crossing_the_frame_running() -> None:
    # 300 px/s sideways at 600 px tall is a walking speed; the legs' cadence and lift say it is a run.
    actions = detect_actions(make_track(24, stepping(1.0, speed=300)), W, H, RULES)
    assert [a.verb_phrase for a in actions] == ["runs to the left"]
    assert actions[0].evidence.signals["leg_swings"] >= 3


def test_alternating_knee_lifts_with_hanging_arms_are_knee_lifts_and_dancing_not_running() -> None:
    def pose(i: int) -> Person:
        p = Person()
        side = "left" if i % 2 else "right"
        hx, hy = p.at(f"{side}_hip")
        p.moved[f"{side}_knee"] = (hx, hy + 0.02 * p.height)  # thigh horizontal, towards the camera
        p.moved[f"{side}_ankle"] = (hx, hy + 0.25 * p.height)  # the shin hangs below the knee
        if i % 4 == 1:  # and the arms swing out to the sides every other step
            for arm, sign in (("left", 1.0), ("right", -1.0)):
                sx, sy = p.at(f"{arm}_shoulder")
                p.moved[f"{arm}_wrist"] = (sx + sign * 0.2 * p.height, sy + 0.05 * p.height)
        return p

    verbs = [a.verb_phrase for a in detect_actions(make_track(24, pose), W, H, RULES)]
    assert "lifts their knees" in verbs and "dances" in verbs
    assert not {"runs", "jogs", "walks"} & set(verbs)


def reach_and_pull(i: int) -> Person:
    """The right arm goes out straight to the side at shoulder height (samples 8-13), then comes back."""
    p = Person()
    if 8 <= i <= 13:
        sx, sy = p.at("right_shoulder")
        p.moved["right_elbow"] = (sx - 0.14 * p.height, sy + 0.02 * p.height)
        p.moved["right_wrist"] = (sx - 0.28 * p.height, sy + 0.04 * p.height)
    return p


def test_reaching_out_then_pulling_back() -> None:
    actions = named(detect_actions(make_track(24, reach_and_pull), W, H, RULES))
    assert [(a.verb_phrase, a.start_s, a.end_s) for a in actions] == [
        ("reaches out with their right arm", 2.0, 3.25),
        ("pulls back their right arm", 3.25, 3.5),
    ]
    assert actions[0].evidence.signals["wrist_from_torso_torso"] > 0.9
    assert actions[0].evidence.signals["arm_straightness"] > 0.85


def test_an_arm_held_out_from_the_start_is_a_pose_not_a_reach() -> None:
    # A photo of someone pointing: nothing reaches (and the held posture is told).
    assert [a.verb_phrase for a in detect_actions(make_track(24, lambda i: reach_and_pull(10)), W, H, RULES)] == [
        "stands still"
    ]


def test_pushing_from_the_chest() -> None:
    def pose(i: int) -> Person:
        p = Person()
        sx, sy = p.at("right_shoulder")
        if 6 <= i < 8:  # the hand in front of the chest
            p.moved["right_elbow"] = (sx + 0.02 * p.height, sy + 0.14 * p.height)
            p.moved["right_wrist"] = (p.cx - 0.02 * p.height, sy + 0.08 * p.height)
        elif 8 <= i < 13:  # thrust out straight
            p.moved["right_elbow"] = (sx - 0.14 * p.height, sy + 0.02 * p.height)
            p.moved["right_wrist"] = (sx - 0.28 * p.height, sy + 0.03 * p.height)
        return p

    actions = named(detect_actions(make_track(20, pose), W, H, RULES))
    assert [a.verb_phrase for a in actions] == ["pushes with their right arm"]


def test_bending_down_and_up_twice_is_counted() -> None:
    def pose(i: int) -> Person:
        p = Person()
        if i in (6, 7, 8, 14, 15, 16):  # the torso tips forward 60 degrees, the legs stay straight
            hy = p.at("left_hip")[1]
            for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder"):
                up = _FRAME[name][0] - 0.52
                p.moved[name] = (p.cx + up * p.height * 0.87, hy - up * p.height * 0.5)
            for name in ("left_elbow", "right_elbow", "left_wrist", "right_wrist"):
                p.moved[name] = (p.cx + 0.3 * p.height, hy + 0.05 * p.height)
        return p

    actions = detect_actions(make_track(24, pose), W, H, RULES)
    assert [(a.verb_phrase, a.repetitions) for a in actions] == [("bends down twice", 2)]


def test_clasping_then_lowering_the_hands() -> None:
    def pose(i: int) -> Person:
        p = Person()
        if 4 <= i < 12:  # palms together in front of the chest for 2 s
            y = p.at("nose")[1] + 0.2 * p.height
            p.moved["right_wrist"], p.moved["left_wrist"] = (p.cx - 5, y), (p.cx + 5, y)
            p.moved["right_elbow"] = (p.cx - 0.1 * p.height, y + 0.05 * p.height)
            p.moved["left_elbow"] = (p.cx + 0.1 * p.height, y + 0.05 * p.height)
        return p

    actions = named(detect_actions(make_track(20, pose), W, H, RULES))
    assert [(a.verb_phrase, a.start_s, a.end_s) for a in actions] == [
        ("clasps their hands", 1.0, 2.75),
        ("lowers their arms", 2.75, 3.0),
    ]


def test_gesturing_while_talking() -> None:
    # Standing in place, both hands move about in front of the chest (never meeting, never raised).
    rng = np.random.default_rng(5)
    offsets = rng.uniform(-0.12, 0.12, size=(24, 4))

    def pose(i: int) -> Person:
        p = Person()
        if 4 <= i < 20:
            y = p.at("nose")[1] + 0.25 * p.height
            dx = 0.12 + abs(offsets[i, 0]) * 0.5
            p.moved["right_wrist"] = (p.cx - dx * p.height + offsets[i, 1] * p.height, y + offsets[i, 2] * p.height)
            p.moved["left_wrist"] = (p.cx + dx * p.height - offsets[i, 3] * p.height, y - offsets[i, 2] * p.height)
        return p

    actions = named(detect_actions(make_track(24, pose), W, H, RULES))
    assert [a.verb_phrase for a in actions] == ["gestures with both hands"]
    assert actions[0].evidence.signals["moves"] >= 6


def test_turning_the_head_to_the_side() -> None:
    def pose(i: int) -> Person:
        p = Person()
        if i >= 10:  # the face turns to profile: the nose moves a third of a torso sideways, shoulders stay
            x, y = p.at("nose")
            p.moved["nose"] = (x + 0.4 * TORSO, y)
        return p

    actions = detect_actions(make_track(20, pose), W, H, RULES)
    assert [a.verb_phrase for a in actions] == ["stands still", "turns their head"]
    assert actions[1].evidence.signals["nose_offset_after"] > 0.3


def test_standing_on_one_leg_is_balancing() -> None:
    def pose(i: int) -> Person:
        p = Person()
        if 6 <= i < 16:
            x, y = p.at("right_ankle")
            p.moved["right_ankle"] = (x, y - 0.7 * TORSO)
        return p

    verbs = [a.verb_phrase for a in detect_actions(make_track(24, pose), W, H, RULES)]
    assert "balances on their left leg" in verbs


def test_where_no_named_action_fits_the_moving_parts_are_told_and_a_hand_to_the_head_is_named() -> None:
    # Both hanging arms swing forwards and back by the sides (no raise, no wave, no reach, no clap).
    def swing(i: int) -> Person:
        p = Person()
        for side, sign in (("left", 1.0), ("right", -1.0)):
            sx, sy = p.at(f"{side}_shoulder")
            p.moved[f"{side}_wrist"] = (sx + sign * 0.05 * p.height, sy + (0.36 if (i // 2) % 2 else 0.24) * p.height)
        return p

    assert [a.verb_phrase for a in named(detect_actions(make_track(24, swing), W, H, RULES))] == ["swings both arms"]

    def hand_to_head(i: int) -> Person:
        p = Person()
        if i >= 10:  # the right hand goes up to the face and stays there
            x, y = p.at("nose")
            p.moved["right_wrist"] = (x - 0.03 * p.height, y + 0.03 * p.height)
            p.moved["right_elbow"] = (p.at("right_shoulder")[0] - 0.05 * p.height, y + 0.15 * p.height)
        return p

    actions = named(detect_actions(make_track(24, hand_to_head), W, H, RULES))
    assert [a.verb_phrase for a in actions] == ["raises their right hand to their head"]
    assert actions[0].evidence.signals["wrist_to_nose_torso"] < 0.5


def test_someone_the_action_rule_accepted_is_never_told_still() -> None:
    # A slight movement of the head, below every named action and part threshold: told when ensured.
    def nod(i: int) -> Person:
        p = Person()
        x, y = p.at("nose")
        p.moved["nose"] = (x, y + (0.05 * TORSO if i % 4 < 2 else 0.0))
        return p

    track = make_track(24, nod)
    assert [a.body_part for a in detect_actions(track, W, H, RULES)] == [POSTURE]
    moved, state = detect_actions(track, W, H, RULES, ensure_action=True)
    assert moved.body_part != POSTURE and moved.verb_phrase.endswith("slightly")
    assert (state.verb_phrase, state.body_part) == ("stands still", POSTURE)  # a slight nod keeps it still


def test_people_overlapping_in_the_picture_at_different_depths_do_not_touch() -> None:
    # A child jumps on a bed behind a girl: in the picture his raised hand lies on her body and their boxes
    # overlap, but he is farther away (smaller, feet higher up). No touch, whatever the boxes do.
    def front(i: int) -> Person:
        return Person(cx=900, ground=1000, height=600)

    def behind(i: int) -> Person:
        p = Person(cx=1050, ground=780, height=430)
        girl = front(i)
        p.moved["right_wrist"] = girl.at("left_shoulder")  # over her shoulder, in the picture only
        p.moved["right_elbow"] = (p.at("right_shoulder")[0] - 40, p.at("right_shoulder")[1] + 20)
        return p

    tracks = [make_track(16, front, track_id=1), make_track(16, behind, track_id=2, seed=2)]
    a, b = (t.samples[0].box for t in tracks)
    assert min(a.x2, b.x2) > max(a.x1, b.x1) and min(a.y2, b.y2) > max(a.y1, b.y1)  # the boxes overlap
    assert detect_interactions(tracks, {}, W, H, RULES) == []


def test_people_side_by_side_with_hanging_hands_do_not_touch() -> None:
    # Close together at one depth, boxes overlapping, arms hanging: no hand reaches out to the other.
    tracks = [
        make_track(16, lambda i: Person(cx=800), track_id=1),
        make_track(16, lambda i: Person(cx=1030), track_id=2, seed=2),
    ]
    a, b = (t.samples[0].box for t in tracks)
    assert a.x2 > b.x1  # the boxes overlap
    assert detect_interactions(tracks, {}, W, H, RULES) == []


def embrace(cx: float, other_cx: float, start: int) -> Callable[[int], Person]:
    """Apart until sample `start`, then close with both hands on the other person's back (one depth)."""

    def pose(i: int) -> Person:
        p = Person(cx=cx if i >= start else cx + 1.5 * (cx - other_cx))
        if i >= start:
            other = Person(cx=other_cx)
            for side, up in (("left", 0.72), ("right", 0.62)):
                p.moved[f"{side}_wrist"] = (other_cx + (cx - other_cx) * 0.1, other.ground - up * other.height)
                p.moved[f"{side}_elbow"] = ((cx + other_cx) / 2, other.ground - up * other.height + 10)
        return p

    return pose


def test_a_hug_is_both_people_holding_each_other_and_the_one_who_reached_first_hugs() -> None:
    tracks = [
        make_track(20, embrace(860, 1000, start=6), track_id=1),
        make_track(20, embrace(1000, 860, start=8), track_id=2, seed=2),
    ]
    got = detect_interactions(tracks, {1: "the man in gray", 2: "the man in black"}, W, H, RULES)
    # They step together (approaching) and hold each other from 2 s, when both hands of both are on.
    assert [(x.kind, x.subject_label, x.object_label, x.start_s) for x in got] == [
        ("approaching", "the man in gray", "the man in black", 1.0),
        ("hugging", "the man in gray", "the man in black", 2.0),
    ]
    assert got[1].evidence.signals["torso_centre_distance_torso"] < 1.0

    # One person's hand on the other's shoulder, at arm's length, the other's arms hanging: a touch.
    def hand_on_shoulder(i: int) -> Person:
        p = Person(cx=760)
        if i >= 6:
            x, y = Person(cx=1000).at("right_shoulder")
            p.moved["left_elbow"] = (880, y + 30)
            p.moved["left_wrist"] = (x + 5, y + 10)
        return p

    tracks = [
        make_track(20, hand_on_shoulder, track_id=1),
        make_track(20, lambda i: Person(cx=1000), track_id=2, seed=2),
    ]
    got = detect_interactions(tracks, {1: "the man in gray", 2: "the man in black"}, W, H, RULES)
    assert [(x.kind, x.subject_label, x.start_s) for x in got] == [("touching", "the man in gray", 1.5)]
    assert got[0].evidence.signals["min_wrist_distance_torso"] <= 0.25


def test_an_interaction_interrupted_for_a_moment_is_stated_once() -> None:
    # Facing each other for 2 s, one looks away for a single sample, then faces the other again for 2 s.
    def profile(cx: float, look: Callable[[int], float]) -> Callable[[int], Person]:
        def pose(i: int) -> Person:
            p = Person(cx=cx, facing=0.2)
            p.moved["nose"] = (cx + look(i) * 0.06 * p.height, p.at("nose")[1])
            return p

        return pose

    tracks = [
        make_track(20, profile(600, lambda i: -1.0 if i == 9 else 1.0), track_id=1),
        make_track(20, profile(1200, lambda i: -1.0), track_id=2),
    ]
    got = detect_interactions(tracks, {1: "the man", 2: "the woman"}, W, H, RULES)
    assert [(x.kind, x.start_s, x.end_s) for x in got] == [("facing each other", 0.0, 4.75)]


def test_passers_by_who_cross_neither_approach_nor_move_apart() -> None:
    # Two people walk past each other (300 px/s each, one a little farther back): they come close for a
    # moment only. Walking up to someone ends near them; these two do not stay.
    tracks = [
        make_track(28, lambda i: Person(cx=200 + 300 * i / FPS), track_id=1),
        make_track(28, lambda i: Person(cx=1800 - 300 * i / FPS, ground=860, height=560), track_id=2, seed=2),
    ]
    got = detect_interactions(tracks, {}, W, H, RULES)
    assert not {"approaching", "moving apart", "touching", "hugging"} & {x.kind for x in got}, got


def test_leaning_towards_the_camera_behind_a_desk_is_no_walking_away() -> None:
    # Seated behind a desk (legs below the frame, the box cut by it), she leans towards the camera over
    # 2 s: her torso looks 40% shorter, her shoulders keep their width. Nobody walks.
    def pose(i: int) -> Person:
        p = Person(ground=1250)
        lean = min(max(i - 6, 0), 8) / 8 * 0.4 * TORSO
        for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder"):
            x, y = p.at(name)
            p.moved[name] = (x, y + lean)
        for name in ("left_elbow", "right_elbow", "left_wrist", "right_wrist"):
            x, y = p.at(name)
            p.moved[name] = (x, y + lean / 2)
        return p

    verbs = [a.verb_phrase for a in detect_actions(make_track(24, pose), W, H, RULES)]
    assert not any(v.startswith(("walks", "runs")) for v in verbs), verbs


def test_no_relation_is_told_between_people_too_small_for_their_keypoints() -> None:
    # The following of test_following, with people 100 px tall (a 30 px torso, as a surveillance view's
    # pedestrians): at that size tracks break and swap in a crowd, and nothing is stated.
    tracks = [
        make_track(24, lambda i: Person(cx=600 + 40 * i / FPS, height=100), track_id=1),
        make_track(24, lambda i: Person(cx=550 + 40 * i / FPS, height=100), track_id=2, seed=3),
    ]
    assert detect_interactions(tracks, {}, W, H, RULES) == []
    # Twice as large (a 60 px torso), the same walk is a following.
    tracks = [
        make_track(24, lambda i: Person(cx=600 + 80 * i / FPS, height=200), track_id=1),
        make_track(24, lambda i: Person(cx=500 + 80 * i / FPS, height=200), track_id=2, seed=3),
    ]
    assert [x.kind for x in detect_interactions(tracks, {}, W, H, RULES)] == ["following"]
