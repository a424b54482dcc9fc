"""Travel and stepping: walking or running across the frame or in depth, with its direction; the legs'
cadence (walking, jogging, running in place or with a camera that tracks the person); turning around; a
step or two towards the camera. Sideways travel needs the legs to step, so a box that drifts with the
camera is no walk.
"""

from __future__ import annotations

import numpy as np

from haic.v1 import events_pb2
from services.captioner.kinematics.phrasing import make_action, overlaps
from services.captioner.kinematics.posture import KNEE_LIFT_DROP, WHOLE_BODY_PARTS, thigh_drops
from services.captioner.kinematics.signals import (
    VELOCITY_WINDOW_S,
    Series,
    body_centre,
    evidence,
    hysteresis,
    quiet,
    smooth,
    swing_runs,
    true_runs,
    velocity,
)

# Locomotion (units: box heights per second, or log box height per second for depth).
WALK_SPEED = 0.25  # body centre moving faster than this sideways is walking
RUN_SPEED = 1.3  # and faster than this is running (walking ~0.8, running ~1.8 body heights/s)
DEPTH_RATE = 0.12  # box height growing/shrinking faster than this (ln units/s) is moving in depth
RUN_DEPTH_RATE = 0.6  # and this fast in depth is running
MIN_MOVE_S = 1.0  # locomotion must last this long
DEPTH_CONFIRM = 2.0  # depth travel counts at most this many times the confirming size's rate
MOVE_KEEP = 0.5  # once moving, the body keeps moving until its speed falls below this share of the threshold

# Turning (units: torso lengths).
TURN_ORDER = 0.2  # left-minus-right shoulder x beyond this tells facing the camera from facing away
TURN_HOLD = 2  # samples a facing must hold on each side of a turn

# Stepping (units: torso lengths). Ankle-height difference between the feet: standing jitter stays at or
# below 0.10 (the juggler, tests/captioner/data/juggle_accepted.binpb); a stride lifts it past 0.3 to 0.5,
# a run or a knee lift past 1 (man_dances_kitchen_drawings: +-1 to +-2).
GAIT_AMP = 0.2  # one foot this far above the other counts as a step to that side
GAIT_MAX_HALF_S = 0.75  # a step (half a stride) takes up to this long; slower is no rhythm (walking: ~0.55 s)
GAIT_MIN_SWINGS = 3  # left-right-left-right: three changes of the higher foot make stepping
RUN_LEG_AMP = 0.5  # a running stride lifts the back foot at least this far above the other
SPRINT_LEG_AMP = 0.9  # and a full run (not a jog) this far
RUN_ARM_STRAIGHT = 0.85  # runners bend their elbows: shoulder-to-wrist below this share of the arm's length
WALK_LEG_AMP_MAX = 0.6  # stepping in place with larger lifts and straight arms is not walking (marching, dancing)

# Sideways travel needs the legs to step. The spread between the feet (or, out of view, the knees, doubled)
# changes by 0.65 to 3 torso lengths over every sideways walk of pedestrians_small_long.avi,
# worker_walks_warehouse.gif and store_aisle_three_shoppers.gif; a box that drifts with the camera
# (man_chroma_key_camera_leaves: legs out of view) or a standing person's feet keep it.
STEP_SPREAD = 0.5  # torso lengths the feet's spread changes by within a sideways run
STEP_SEEN_SHARE = 0.5  # the legs are seen in at least this share of the run's samples

# A step or two towards the camera: the body grows quickly, then holds (three_people_standing_still.gif:
# shoulder width and neck height +35 to 50 % within 1.5 s, then within 5 %). Both sizes must grow: a head
# or body turning towards the camera widens the shoulders but leaves the neck's height.
STEP_FORWARD_GROWTH = 0.15  # ln size: both sizes grow by at least this (16 %)
STEP_FORWARD_MAX_S = 2.5  # within this long
STEP_FORWARD_HOLD_S = 1.0  # and the size then holds (within STEP_FORWARD_GROWTH / 2) at least this long
# seen holding in this many samples with both sizes known: a track with gaps (the man of
# man_chroma_key_camera_leaves turning his head, his ears seen now 28 px and now 74 px apart, and lost for a
# second) shows no hold
STEP_FORWARD_HOLD_SAMPLES = 3

# The ear-to-ear span measures the head's width only on a face turned to the camera: the nose between the ears
# and the eyes this share of the ear span apart (frontal faces of three_people_standing_still and
# man_chroma_key_camera_leaves: 0.41 to 0.48; his head turned away: 0.2)
FRONTAL_EYE_SHARE = 0.35


def locomotion_runs(s: Series) -> tuple[list[tuple[str, int, int]], np.ndarray, np.ndarray]:
    """Runs (direction, first, last) of travel lasting at least MIN_MOVE_S, and the per-sample sideways
    speed (box heights per second, + = image right) and depth rate (ln box height per second)."""
    vx = velocity(s.t, body_centre(s)[:, 0], VELOCITY_WINDOW_S) / s.height
    with quiet():
        vz = velocity(s.t, np.log(s.size), VELOCITY_WINDOW_S)
        # A body coming closer grows all over; one size alone also changes as arms go up (the box),
        # as the torso leans or turns (its length) or the shoulders turn (their width). Depth travel is
        # taken only as fast as a second, independent size confirms it: the 1940 switchboard operators
        # leaning and turning in their chairs, and a man turning to the back of a stage, walked nowhere.
        torso = np.linalg.norm(s.mid("left_shoulder", "right_shoulder") - s.mid("left_hip", "right_hip"), axis=1)
        shoulders = np.linalg.norm(s.joint("left_shoulder") - s.joint("right_shoulder"), axis=1)
        confirm = np.where(s.size_from_torso | np.isnan(torso), shoulders, torso)
        vc = velocity(s.t, np.log(confirm), VELOCITY_WINDOW_S)
    vz = np.where(np.sign(vz) == np.sign(vc), np.sign(vz) * np.fmin(np.abs(vz), DEPTH_CONFIRM * np.abs(vc)), 0.0)
    # Hysteresis: a stride's sway slows the body for a moment without ending the walk (the warehouse
    # worker of worker_walks_warehouse.gif recedes at 0.12 to 0.27 ln/s with one sample at 0.09).
    masks = {
        "to the left": hysteresis(-vx, WALK_SPEED, WALK_SPEED * MOVE_KEEP),
        "to the right": hysteresis(vx, WALK_SPEED, WALK_SPEED * MOVE_KEEP),
        "towards the camera": hysteresis(vz, DEPTH_RATE, DEPTH_RATE * MOVE_KEEP),
        "away from the camera": hysteresis(-vz, DEPTH_RATE, DEPTH_RATE * MOVE_KEEP),
    }
    # Sideways travel is a walk only where the legs step: a box drifting with the camera is not.
    candidates = [
        (label, a, b)
        for label, mask in masks.items()
        for a, b in true_runs(mask)
        if s.t[b] - s.t[a] >= MIN_MOVE_S and (not label.startswith("to the") or legs_step(s, a, b))
    ]
    # A diagonal walk crosses both thresholds, now one and now the other: each axis is measured on its
    # own; where two runs overlap the longer names the direction (a tie goes to depth), and the other,
    # overlapping it for at least half its own length, is told with it ("towards the camera and to the
    # left", the corridor walkers of two_people_walk_corridor.gif).
    candidates.sort(key=lambda r: (r[2] - r[1], r[0].startswith(("towards", "away"))), reverse=True)
    runs: list[tuple[str, int, int]] = []
    for label, a, b in candidates:
        overlapping = [k for k, (_, x, y) in enumerate(runs) if not (b < x or y < a)]
        if not overlapping:
            runs.append((label, a, b))
            continue
        k = overlapping[0]
        primary, x, y = runs[k]
        shared = min(b, y) - max(a, x) + 1
        if len(overlapping) == 1 and " and " not in primary and 2 * shared >= b - a + 1:
            runs[k] = (f"{primary} and {label}", x, y)
    runs.sort(key=lambda r: r[1])
    return runs, vx, vz


def travel_mask(s: Series) -> np.ndarray:
    """Samples where the body travels (walks or runs) in any direction."""
    moving = np.zeros(len(s.t), dtype=bool)
    for _, a, b in locomotion_runs(s)[0]:
        moving[a : b + 1] = True
    return moving


def locomotion_actions(s: Series) -> list[events_pb2.Action]:
    cx = body_centre(s)[:, 0]
    runs, vx, vz = locomotion_runs(s)
    out: list[events_pb2.Action] = []
    for label, a, b in runs:
        dt = float(s.t[b] - s.t[a])
        primary = label.split(" and ")[0]
        if primary.startswith("to the"):
            speed = float(np.nanmedian(np.abs(vx[a : b + 1])))
            running = speed > RUN_SPEED
            sig = {
                "displacement_px": float(cx[b] - cx[a]),
                "speed_body_heights_per_s": speed,
                "leg_spread_change_torso": leg_spread_change(s, a, b),
            }
        else:
            speed = float(np.nanmedian(np.abs(vz[a : b + 1])))
            running = speed > RUN_DEPTH_RATE
            sig = {"box_height_ratio": float(s.size[b] / s.size[a]), "log_height_rate_per_s": speed}
        sig["duration_s"] = dt
        verb = "runs" if running else "walks"
        out.append(
            events_pb2.Action(
                start_s=float(s.t[a]),
                end_s=float(s.t[b]),
                verb_phrase=f"{verb} {label}",
                body_part="whole body",
                direction=primary.removeprefix("to the "),
                evidence=evidence(s.t, a, b, **sig),
            )
        )
    return out


def turn_actions(s: Series) -> list[events_pb2.Action]:
    # Facing the camera the person's left shoulder is on the image right: left x - right x > 0.
    order = (s.joint("left_shoulder")[:, 0] - s.joint("right_shoulder")[:, 0]) / s.scale
    facing = np.where(order > TURN_ORDER, 1, np.where(order < -TURN_ORDER, -1, 0))
    # A facing seen in one sample only is a left/right keypoint swap of the pose model, not a turn
    # (the dim stage of man_gestures_dark_stage flips single samples).
    for a, b in true_runs(facing != 0):
        for x, y in true_runs(facing[a : b + 1] == 1) + true_runs(facing[a : b + 1] == -1):
            if y - x + 1 < TURN_HOLD:
                facing[a + x : a + y + 1] = 0
    out: list[events_pb2.Action] = []
    last = -1
    for i, f in enumerate(facing):
        if f == 0:
            continue
        if last >= 0 and facing[last] != f:
            out.append(
                make_action(
                    s,
                    last,
                    i,
                    "turns around",
                    "whole body",
                    shoulder_order_before=float(order[last]),
                    shoulder_order_after=float(order[i]),
                    facing_camera_after=float(f > 0),
                )
            )
        last = i
    return out


def arm_straightness(s: Series, a: int, b: int) -> float:
    """Median shoulder-to-wrist distance over the arm's length (1 straight, ~0.7 elbow at a right angle)."""
    values = []
    for side in ("left", "right"):
        sh, el, wr = (s.joint(f"{side}_{j}")[a : b + 1] for j in ("shoulder", "elbow", "wrist"))
        values.append(
            np.linalg.norm(wr - sh, axis=1) / (np.linalg.norm(el - sh, axis=1) + np.linalg.norm(wr - el, axis=1))
        )
    v = np.concatenate(values)
    return float(np.nanmedian(v)) if np.any(~np.isnan(v)) else 1.0


def leg_difference(s: Series, axis: int) -> np.ndarray:
    """Left minus right ankle along one image axis (torso lengths); where an ankle is unseen, twice the
    knees' difference (a knee moves half as much as its ankle in a stride)."""
    la, ra = s.joint("left_ankle")[:, axis], s.joint("right_ankle")[:, axis]
    lk, rk = s.joint("left_knee")[:, axis], s.joint("right_knee")[:, axis]
    return np.where(np.isnan(la - ra), 2 * (lk - rk), la - ra) / s.scale


def leg_spread_change(s: Series, a: int, b: int) -> float:
    """How much the feet's spread (front-back or up-down, torso lengths) changes within samples a..b, the
    legs seen in most of them; 0 where they are not. Camera motion over a standing person shifts the box,
    not the spread."""
    change = 0.0
    for axis in (0, 1):
        d = leg_difference(s, axis)[a : b + 1]
        if np.count_nonzero(~np.isnan(d)) >= max(2, STEP_SEEN_SHARE * len(d)):
            change = max(change, float(np.nanmax(d) - np.nanmin(d)))
    return change


def legs_step(s: Series, a: int, b: int) -> bool:
    """The legs step within samples a..b: the feet's spread changes by a stride."""
    return leg_spread_change(s, a, b) >= STEP_SPREAD


def gait_runs(s: Series) -> list[tuple[int, int, dict[str, float]]]:
    """Stepping from the legs' cadence: the ankles (or, where out of view, the knees) take turns being the
    higher one, whether or not the body crosses the frame (a camera may track the person). Runs (first,
    last, signals)."""
    diff = leg_difference(s, 1)
    left_drop, right_drop = thigh_drops(s)
    out = []
    for a, b, swings in swing_runs(s.t, diff, GAIT_AMP, GAIT_MAX_HALF_S):
        if swings < GAIT_MIN_SWINGS or s.t[b] - s.t[a] < MIN_MOVE_S:
            continue
        sig = {
            "leg_swings": float(swings),
            "strides_per_s": swings / 2 / float(s.t[b] - s.t[a]),
            "leg_amplitude_torso": float(np.nanmedian(np.abs(diff[a : b + 1]))),
            "arm_straightness": arm_straightness(s, a, b),
            "min_thigh_drop_torso": float(np.nanmin(np.fmin(left_drop, right_drop)[a : b + 1])),
        }
        out.append((a, b, sig))
    return out


def stepping_mask(s: Series) -> np.ndarray:
    """Samples where the legs step (walk, jog, run; not knee lifts): a lifted swing foot is no kick there."""
    mask = np.zeros(len(s.t), dtype=bool)
    for a, b, sig in gait_runs(s):
        if sig["min_thigh_drop_torso"] > KNEE_LIFT_DROP:
            mask[a : b + 1] = True
    return mask


def gait_actions(s: Series, travel: list[events_pb2.Action], moving: np.ndarray) -> list[events_pb2.Action]:
    """Running, jogging or walking from the stepping cadence. Travel already told ("walks to the left")
    becomes "runs ..." when the cadence is a run's; stepping without travel across the frame (in place,
    or with a camera that tracks the person) is told on its own."""
    out: list[events_pb2.Action] = []
    for a, b, sig in gait_runs(s):
        amplitude, straightness, knee_up = (
            sig["leg_amplitude_torso"],
            sig["arm_straightness"],
            sig["min_thigh_drop_torso"],
        )
        # A runner's elbows are bent at about a right angle and the knees stay below the hips; a marcher's
        # or dancer's arms hang straight while the knees come up to the hips.
        running = amplitude >= RUN_LEG_AMP and straightness < RUN_ARM_STRAIGHT and knee_up > KNEE_LIFT_DROP
        crossing = [x for x in travel if overlaps(x, float(s.t[a]), float(s.t[b]))]
        for x in crossing:
            if running and x.verb_phrase.startswith("walks"):
                x.verb_phrase = "runs" + x.verb_phrase.removeprefix("walks")
            for k, v in sig.items():
                x.evidence.signals[k] = round(v, 4)
        if crossing or moving[a : b + 1].mean() > 0.5:
            continue
        if running:
            out.append(
                make_action(s, a, b, "runs" if amplitude >= SPRINT_LEG_AMP else "jogs", "legs", repetitions=0, **sig)
            )
        elif amplitude < WALK_LEG_AMP_MAX and knee_up > KNEE_LIFT_DROP:
            out.append(make_action(s, a, b, "walks", "legs", repetitions=0, **sig))
    return out


def step_forward_actions(s: Series, told: list[events_pb2.Action]) -> list[events_pb2.Action]:
    """A step or two towards the camera: the body's width (shoulder width, or the ear-to-ear span of a face
    turned to the camera where a shoulder is hidden behind someone) and neck height (nose above the shoulder
    line) grow together by STEP_FORWARD_GROWTH within STEP_FORWARD_MAX_S, and the size then holds, seen in
    STEP_FORWARD_HOLD_SAMPLES samples. Longer approaches are walks (locomotion_runs); none is told next to another
    whole-body action."""
    if any(a.body_part in WHOLE_BODY_PARTS for a in told):
        return []  # a walk, a bend, a jump or a posture change moves the shoulders and the nose too
    shoulders = np.linalg.norm(s.joint("left_shoulder") - s.joint("right_shoulder"), axis=1)
    ears = np.linalg.norm(s.joint("left_ear") - s.joint("right_ear"), axis=1)
    eyes = np.linalg.norm(s.joint("left_eye") - s.joint("right_eye"), axis=1)
    nose_x = s.joint("nose")[:, 0]
    between = (nose_x - s.joint("left_ear")[:, 0]) * (nose_x - s.joint("right_ear")[:, 0]) < 0
    ears = np.where(between & (eyes >= FRONTAL_EYE_SHARE * ears), ears, np.nan)
    neck = s.mid("left_shoulder", "right_shoulder")[:, 1] - s.joint("nose")[:, 1]
    neck_ln = smooth(np.log(np.where(neck > 0, neck, np.nan)), 3)
    widths = {"shoulder": smooth(np.log(shoulders), 3), "ear": smooth(np.log(ears), 3)}
    idx = np.flatnonzero(~np.isnan(neck_ln) & ~(np.isnan(widths["shoulder"]) & np.isnan(widths["ear"])))
    if len(idx) < 4:
        return []
    t = s.t[idx]
    for i in range(len(idx)):
        for j in range(i + 1, len(idx)):
            if t[j] - t[i] > STEP_FORWARD_MAX_S:
                break
            a, b = int(idx[i]), int(idx[j])
            # The shoulders where both ends show them (the three coworkers of three_people_standing_still: a
            # woman's shoulder is hidden behind the man beside her until her step brings her level with him).
            width = "shoulder" if not np.isnan(widths["shoulder"][[a, b]]).any() else "ear"
            width_ln = widths[width]
            if np.isnan(width_ln[[a, b]]).any():
                continue
            # The box grows too (at its free edge where the frame cuts it): a person turning to face the
            # camera widens the shoulders and lifts the nose without growing (store_aisle_three_shoppers).
            box_growth = float(np.log(s.size[b] / s.size[a]))
            grown = min(neck_ln[b] - neck_ln[a], width_ln[b] - width_ln[a], 2 * box_growth)
            if grown < STEP_FORWARD_GROWTH or t[-1] - t[j] < STEP_FORWARD_HOLD_S:
                continue
            after = idx[(t >= t[j]) & (t <= t[j] + STEP_FORWARD_HOLD_S)]
            after = after[~np.isnan(width_ln[after])]
            if len(after) < STEP_FORWARD_HOLD_SAMPLES:
                continue
            with quiet():
                drift = max(float(np.nanmax(x[after]) - np.nanmin(x[after])) for x in (neck_ln, width_ln))
            if drift <= STEP_FORWARD_GROWTH / 2:
                return [
                    make_action(
                        s,
                        a,
                        b,
                        "steps forward",
                        "whole body",
                        repetitions=0,
                        **{f"{width}_width_ratio": float(np.exp(width_ln[b] - width_ln[a]))},
                        neck_height_ratio=float(np.exp(neck_ln[b] - neck_ln[a])),
                        body_size_ratio=float(np.exp(box_growth)),
                        size_drift_after_ln=float(drift),
                    )
                ]
    return []
