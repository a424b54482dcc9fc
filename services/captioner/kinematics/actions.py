"""One person's actions from their dense track.

Named actions come first (arms, hands, legs, posture changes, travel and stepping cadence, turns,
gestures, dancing, a step forward); where none fits, the body parts that move and how. A person who
does not move their whole body is also told by their held posture ("stands still", "sits"; "stays
still" where the legs are unseen), body_part POSTURE, a state that the judge does not count as movement.
Sideways travel needs the legs to step, so a box that drifts with the camera is no walk.
"""

from __future__ import annotations

import itertools

import numpy as np

from haic.v1 import events_pb2
from services.captioner.kinematics.signals import (
    VELOCITY_WINDOW_S,
    KinematicsRules,
    Series,
    body_centre,
    evidence,
    hysteresis,
    long_runs,
    quiet,
    smooth,
    track_series,
    true_runs,
    velocity,
)

# Arms (units: torso lengths).
RAISE_ON = 0.15  # wrist this far above the shoulder counts as raised
RAISE_OFF = 0.0  # and it counts as lowered again once back below the shoulder (hysteresis against jitter)
WAVE_LIFT = 0.3  # a waving forearm points up: wrist this far above the elbow (hands clapping in front do not)
WAVE_SWING = 0.2  # wrist-minus-elbow x must swing this far either side of its mean to count a wave stroke
WAVE_MIN_STROKES = 3  # at least 3 strokes (left-right-left) make a wave rather than a single gesture
CLAP_NEAR = 0.3  # wrists closer than this have met
CLAP_FAR = 0.6  # and must part beyond this before the next meeting counts
CLAP_MIN = 2  # one meeting is a hand clasp, repeated meetings are clapping
# The squatter of woman_band_squats_5fps holds her hands together 1.2 to 2.4 s per squat, 3 s apart: no claps.
CLAP_MAX_HOLD_S = 0.75  # a clap's meeting is brief
CLAP_MAX_GAP_S = 1.5  # and the next follows within this

# Jumps and kicks (units: torso lengths).
JUMP_RISE_ON = 0.25  # hips and ankles both this far above their rolling baseline = airborne
JUMP_RISE_OFF = 0.1  # back on the ground below this
JUMP_SIDE_S = 1.0  # a jump rises above the ground position within this long before and after it
# A kick lifts one foot off the ground and puts it back while the other foot stays down. Measured on
# the real juggler (tests/captioner/data/juggle_accepted.binpb, 4 fps, torso 185 px): his foot touches
# lift the kicking ankle 0.22 to 0.56 torso lengths (1.6 on his big kick), while standing jitter of
# the same signal stays at or below 0.10. The former rule (ankle above the standing knee, rising
# faster than 1.5 torso lengths/s) found only the big kick: touches keep the foot below the other
# knee, and at 4 fps a 0.25 s touch is seen in one sample, so its sampled up speed (0.55 to 1.15)
# is no higher than standing jitter (up to 0.73). The rise, up and back down within JUMP_SIDE_S on
# both sides, is what separates a kick from a foot that is only placed higher.
KICK_LIFT = 0.15  # ankle this far above both its own ground (before and after) and the other ankle
KICK_ABOVE_KNEE = 0.0  # while walking or running a stride lifts the swing foot too: only a kick whose
# ankle rises above the standing leg's knee counts then
GROUND_RISE = 0.15  # the standing leg's ankle stays within this of its baseline (else it is a jump)

# Posture (torso tilt in degrees from upright; thigh drop in torso lengths).
LOW_THIGH_DROP = 0.45  # knee less than this below the hip: thighs near horizontal (sitting or squatting)
STAND_THIGH_DROP = 0.6  # knee this far below the hip: legs straight
UPRIGHT_TILT = 35.0  # torso within this of vertical is upright
BEND_TILT = 45.0  # torso tilted beyond this with straight legs is bending
LYING_TILT = 60.0  # torso beyond this and a box wider than tall is lying
MIN_POSTURE_SAMPLES = 2  # a posture must hold this many samples (0.5 s at 4 fps) to count
END_RISE = 0.15  # thigh drop (torso lengths) regained after a last dip at the clip's end
SQUAT_MAX_S = 3.0  # a low posture that returns to standing within this is a squat, longer is sitting
# Repeated squats/bends with this little standing between them are one counted action: the squatter of
# woman_band_squats_5fps stands 2.5 to 3.2 s between slow squats.
MERGE_GAP_S = 4.0

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
SHIN_HANGS = 0.5  # a lifted knee's ankle hangs at least this far below it (a shin is ~1 torso long)
KNEE_LIFT_MIN = 3  # knee lifts are told when repeated (marching, dancing); one comes with any high kick
KNEE_LIFT_DROP = 0.3  # knee less than this below its hip is lifted (standing 0.8, the dancer's lifts -0.25..0.27)
BALANCE_LIFT = 0.5  # one ankle this far above the other, held, is standing on one leg
BALANCE_MIN_S = 1.0

# Reaching, pulling, pushing (units: torso lengths). Hanging or resting arms keep the wrist 0.45 to 0.65
# from the torso axis (woman_band_squats_5fps, man_dances_kitchen_drawings); the stage gesturer's pointing
# arm reaches 1.3 to 1.4.
REACH_OUT = 0.9  # wrist this far from the torso axis with a straight arm is reaching out
REACH_BACK = 0.6  # and back below this the arm is at the body again (hysteresis)
REACH_STRAIGHT = 0.85  # shoulder-to-wrist over the arm's length above this: the elbow is (nearly) straight
REACH_FROM_S = 1.5  # the wrist was at the body (below REACH_BACK) within this long before the reach
REACH_MIN_SAMPLES = 2  # held for this many samples (0.25 s at 4 fps)
CHEST_DEPTH = 0.8  # a hand at most this far below the shoulder (torso lengths) is in front of the chest
PUSH_S = 0.5  # from in front of the chest to full extension within this long is a push
PULL_HOLD_S = 0.5  # a reach held this long and then brought back to the body is a pull
PULL_S = 1.0  # the arm comes back within this long after the reach ends

# Hands together, lowered (units: torso lengths).
CLASP_NEAR = 0.35  # wrists this close in front of the chest hold the hands together (the squatter's clasp: 0.26-0.3)
CLASP_MIN_S = 1.0  # held this long (clapping hands meet for a sample or two)
LOWER_S = 1.0  # after letting go, the hands drop ...
LOWER_DROP = 0.5  # ... this far within LOWER_S: the arms are lowered

# Gesturing: the hands move about in front of the torso (units: torso lengths, from the mid-shoulder).
GESTURE_ABOVE = 0.5  # from half a torso above the shoulders (at the face) ...
GESTURE_BELOW = 0.8  # ... down to the waist (hanging arms keep the wrists 1.0 to 1.2 below the shoulders)
GESTURE_WIDE = 1.0  # and within this of the body's centre line
GESTURE_SPEED = 0.8  # torso lengths per second: at 4 fps a 0.2 step between samples, 3x standing jitter
GESTURE_MIN_MOVES = 3  # moving samples ...
GESTURE_PAUSE_S = 0.75  # ... with pauses no longer than this between them

# Head turns: the nose shifts sideways against the shoulder centre (torso lengths), the shoulders not turning.
# The juggler looking down at his ball moves his nose +-0.15 about the centre; a profile sits 0.3 to 0.45 off it.
HEAD_TURN = 0.3
HEAD_TURN_S = 1.5  # from one held position to the other within this long

# Held states: the posture (or, where the legs are unseen, stillness) of someone who does not travel, told
# next to small movements ("Initially, they stand still, then turn their head").
POSTURE = "posture"  # Action.body_part of a held posture ("stands", "sits"): a state, not a movement
POSTURE_STATE_SHARE = 0.6  # the posture holds for this share of the samples whose posture is known
POSTURE_KNOWN_SHARE = 0.5  # and the posture is known (legs seen) in at least this share of the samples
# Actions of these body parts move the whole body: no held state is told next to them.
WHOLE_BODY_PARTS = ("whole body", "legs", "torso", "left leg", "right leg")
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

# Dancing: several kinds of limb movement, repeated, in place.
DANCE_MIN_KINDS = 2
DANCE_MIN_EVENTS = 6

# Parts that move without a named action (units: torso lengths, relative to the body).
MOVE_RANGE = 0.4  # a limb end's path spans at least this (standing jitter: ~0.1)
HAND_TO_HEAD = 0.5  # a wrist this close to the nose is at the head
SWING_AMP = 0.15  # a swing goes this far either side of the limb's median position ...
SWING_MAX_HALF_S = 1.0  # ... each way within this long ...
SWING_MIN_REVERSALS = 2  # ... and turns back at least this often

_COUNT_WORDS = {
    2: "twice",
    3: "three times",
    4: "four times",
    5: "five times",
    6: "six times",
    7: "seven times",
    8: "eight times",
    9: "nine times",
    10: "ten times",
}


def _count_phrase(base: str, n: int) -> str:
    if n <= 1:
        return base
    return f"{base} {_COUNT_WORDS.get(n, f'{n} times')}"


# --- per-person primitives ---


def _arm_actions(s: Series) -> list[events_pb2.Action]:
    out: list[events_pb2.Action] = []
    n = len(s.t)
    for side in ("right", "left"):
        shoulder, elbow, wrist = (s.joint(f"{side}_{j}") for j in ("shoulder", "elbow", "wrist"))
        part = f"{side} arm"
        # Waving: wrist above the elbow, its x swinging about the elbow.
        above_elbow = (elbow[:, 1] - wrist[:, 1]) / s.scale > WAVE_LIFT
        waved = np.zeros(n, dtype=bool)
        for a, b in true_runs(above_elbow):
            u = (wrist[a : b + 1, 0] - elbow[a : b + 1, 0]) / s.scale
            if b - a + 1 < WAVE_MIN_STROKES + 1 or np.all(np.isnan(u)):
                continue
            centre = float(np.nanmean(u))
            side_of = np.where(u > centre + WAVE_SWING, 1, np.where(u < centre - WAVE_SWING, -1, 0))
            signs = [v for v in side_of if v != 0]
            strokes = sum(1 for p, q in itertools.pairwise(signs) if p != q)
            if strokes >= WAVE_MIN_STROKES - 1:  # 3 extremes = 2 sign changes
                waved[a : b + 1] = True
                out.append(
                    events_pb2.Action(
                        start_s=float(s.t[a]),
                        end_s=float(s.t[b]),
                        verb_phrase=f"waves their {side} hand",
                        body_part=f"{side} hand",
                        evidence=evidence(
                            s.t, a, b, wrist_swing_torso=float(np.nanmax(u) - np.nanmin(u)), strokes=strokes + 1
                        ),
                    )
                )
        r = (shoulder[:, 1] - wrist[:, 1]) / s.scale  # >0: wrist above shoulder
        raised = hysteresis(r, RAISE_ON, RAISE_OFF)
        raises: list[tuple[int, int]] = []
        for a, b in true_runs(raised):
            if waved[a : b + 1].any():
                continue  # the raise is part of the wave already reported
            if a == 0:
                if b < n - 1:  # up from the start, comes down: a lowering, not a raise
                    out.append(
                        events_pb2.Action(
                            start_s=float(s.t[b]),
                            end_s=float(s.t[b + 1]),
                            verb_phrase=f"lowers their {side} arm",
                            body_part=part,
                            evidence=evidence(
                                s.t, b, b + 1, wrist_above_shoulder_torso=float(r[b]), after=float(r[b + 1])
                            ),
                        )
                    )
                continue
            raises.append((a, b))
        if raises:
            a, b = raises[0][0], raises[-1][1]
            peak = max(float(np.nanmax(r[x : y + 1])) for x, y in raises)
            # A hand raised only as far as the face (to the head, the ear, the mouth) is told so.
            to_head = np.linalg.norm(wrist - s.joint("nose"), axis=1) / s.scale
            at_head = all(float(np.nanmedian(to_head[x : y + 1])) < HAND_TO_HEAD for x, y in raises)
            what = f"raises their {side} hand to their head" if at_head else f"raises their {side} arm"
            out.append(
                events_pb2.Action(
                    start_s=float(s.t[a]),
                    end_s=float(s.t[b]),
                    verb_phrase=_count_phrase(what, len(raises)),
                    body_part=part,
                    repetitions=len(raises),
                    evidence=evidence(
                        s.t,
                        a,
                        b,
                        wrist_above_shoulder_px=peak * s.scale,
                        wrist_above_shoulder_torso=peak,
                        wrist_to_nose_torso=float(np.nanmin(to_head[a : b + 1])),
                        peaks=len(raises),
                    ),
                )
            )
    return out


def _clap_actions(s: Series) -> list[events_pb2.Action]:
    lw, rw = s.joint("left_wrist"), s.joint("right_wrist")
    d = np.linalg.norm(lw - rw, axis=1) / s.scale
    hip_y = s.mid("left_hip", "right_hip")[:, 1]
    # Hands must be in front of the body (above the hips) so arms hanging together do not count.
    d = np.where(np.fmax(lw[:, 1], rw[:, 1]) < hip_y, d, np.nan)
    meets = [(a, b) for a, b in true_runs(hysteresis(-d, -CLAP_NEAR, -CLAP_FAR)) if s.t[b] - s.t[a] <= CLAP_MAX_HOLD_S]
    # Claps come in a rhythm; hands meeting now and then (holding something, clasping) do not clap.
    rhythm = [[meets[0]]] if meets else []
    for m in meets[1:]:
        if s.t[m[0]] - s.t[rhythm[-1][-1][1]] <= CLAP_MAX_GAP_S:
            rhythm[-1].append(m)
        else:
            rhythm.append([m])
    meets = max(rhythm, key=len) if rhythm else []
    if len(meets) < CLAP_MIN:
        return []
    a, b = meets[0][0], meets[-1][1]
    return [
        events_pb2.Action(
            start_s=float(s.t[a]),
            end_s=float(s.t[b]),
            verb_phrase=_count_phrase("claps", len(meets)),
            body_part="hands",
            repetitions=len(meets),
            evidence=evidence(s.t, a, b, min_wrist_distance_torso=float(np.nanmin(d)), peaks=len(meets)),
        )
    ]


def _rise(s: Series, y: np.ndarray) -> np.ndarray:
    """How far a y coordinate is above its lowest position both before and after (torso lengths).

    A jump goes up and comes back down, so it rises above both sides; walking towards or away from
    the camera moves the body monotonically in y and never does, nor does standing up (no way back).
    """
    out = np.full(len(y), np.nan)
    for i in range(len(y)):
        before = y[(s.t >= s.t[i] - JUMP_SIDE_S) & (s.t < s.t[i])]
        after = y[(s.t > s.t[i]) & (s.t <= s.t[i] + JUMP_SIDE_S)]
        if np.isnan(y[i]) or np.all(np.isnan(before)) or np.all(np.isnan(after)):
            continue
        out[i] = (min(float(np.nanmax(before)), float(np.nanmax(after))) - y[i]) / s.scale
    return out


def _jump_and_kick_actions(s: Series) -> list[events_pb2.Action]:
    out: list[events_pb2.Action] = []
    hip_rise = _rise(s, s.mid("left_hip", "right_hip")[:, 1])
    la_rise, ra_rise = _rise(s, s.joint("left_ankle")[:, 1]), _rise(s, s.joint("right_ankle")[:, 1])
    # Every part must rise: a body leaving the ground. The hips alone do not tell a jump where both feet are
    # unseen: a hip keypoint slipping as a man on a dark stage turns away (man_gestures_dark_stage) rose 1.0
    # torso lengths and back; a seated woman of three_women_talk_1940_film leaning forward did too.
    both = np.minimum(hip_rise, np.fmin(la_rise, ra_rise))
    jumps = true_runs(hysteresis(both, JUMP_RISE_ON, JUMP_RISE_OFF))
    if jumps:
        a, b = jumps[0][0], jumps[-1][1]
        out.append(
            events_pb2.Action(
                start_s=float(s.t[a]),
                end_s=float(s.t[b]),
                verb_phrase=_count_phrase("jumps", len(jumps)),
                body_part="whole body",
                repetitions=len(jumps),
                evidence=evidence(
                    s.t,
                    a,
                    b,
                    max_rise_torso=float(np.nanmax(both)),
                    max_rise_px=float(np.nanmax(both)) * s.scale,
                    peaks=len(jumps),
                ),
            )
        )
    moving, stepping = _moving(s), _stepping(s)
    ankle_y = {"left": s.joint("left_ankle")[:, 1], "right": s.joint("right_ankle")[:, 1]}
    rise = {"left": la_rise, "right": ra_rise}
    for side, other in (("right", "left"), ("left", "right")):
        # Height over the other ankle, less its median: feet set apart in depth stand at different
        # image heights, and that offset is no lift.
        over = (ankle_y[other] - ankle_y[side]) / s.scale
        if np.any(~np.isnan(over)):
            over = over - np.nanmedian(over)
        lift = np.minimum(rise[side], over)  # NaN where either is unknown (the clip's ends included)
        above_knee = (s.joint(f"{other}_knee")[:, 1] - ankle_y[side]) / s.scale
        up_speed = np.concatenate([[np.nan], -np.diff(ankle_y[side]) / np.diff(s.t)]) / s.scale  # backwards
        kicking = (
            (lift > KICK_LIFT)
            & (rise[other] < GROUND_RISE)
            & (~moving | (above_knee > KICK_ABOVE_KNEE))
            & ~stepping  # a stride lifts the swing foot, a runner's up to the other knee and beyond
        )
        kicks = true_runs(kicking)
        if kicks:
            a, b = kicks[0][0], kicks[-1][1]
            runs = [np.arange(x, y + 1) for x, y in kicks]
            at = np.concatenate(runs)
            out.append(
                events_pb2.Action(
                    start_s=float(s.t[a]),
                    end_s=float(s.t[b]),
                    verb_phrase=_count_phrase(f"kicks with their {side} leg", len(kicks)),
                    body_part=f"{side} leg",
                    repetitions=len(kicks),
                    evidence=evidence(
                        s.t,
                        a,
                        b,
                        ankle_lift_torso=float(np.nanmax(lift[at])),
                        min_peak_lift_torso=min(float(np.nanmax(lift[r])) for r in runs),
                        ankle_above_knee_torso=float(np.nanmax(above_knee[at])),
                        # Into each kick's samples from the sample before (0 where that one is unknown).
                        ankle_up_speed_torso_per_s=float(np.nanmax(np.append(up_speed[at], 0.0))),
                        peaks=len(kicks),
                    ),
                )
            )
    return out


def _postures(s: Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-sample posture ("stand", "low", "bend", "lie", "" unknown), torso tilt and thigh drop."""
    sh, hip = s.mid("left_shoulder", "right_shoulder"), s.mid("left_hip", "right_hip")
    v = sh - hip
    tilt = np.degrees(np.arctan2(np.abs(v[:, 0]), -v[:, 1]))
    # Sitting and squatting bring both thighs up; one knee lifted (marching, dancing) is no low posture.
    left, right = _thigh_drops(s)
    thigh = np.fmax(left, right)
    wide = (s.box[:, 2] - s.box[:, 0]) > (s.box[:, 3] - s.box[:, 1])
    labels: list[str] = []
    for i in range(len(s.t)):
        if np.isnan(tilt[i]):
            labels.append("")
        elif tilt[i] > LYING_TILT and wide[i]:
            labels.append("lie")
        elif tilt[i] < UPRIGHT_TILT and thigh[i] < LOW_THIGH_DROP:
            labels.append("low")
        elif tilt[i] > BEND_TILT and not (thigh[i] < LOW_THIGH_DROP):
            labels.append("bend")
        elif tilt[i] < UPRIGHT_TILT and thigh[i] > STAND_THIGH_DROP:
            labels.append("stand")
        else:
            labels.append("")
    return labels, tilt, thigh


def _posture_actions(s: Series) -> list[events_pb2.Action]:
    labels, tilt, thigh = _postures(s)
    # Runs of one posture held long enough; unknown samples and flickers are dropped.
    runs: list[tuple[str, int, int]] = []
    i = 0
    while i < len(labels):
        j = i
        while j + 1 < len(labels) and labels[j + 1] == labels[i]:
            j += 1
        if labels[i] and j - i + 1 >= MIN_POSTURE_SAMPLES:
            if runs and runs[-1][0] == labels[i]:
                runs[-1] = (labels[i], runs[-1][1], j)
            else:
                runs.append((labels[i], i, j))
        i = j + 1
    out: list[events_pb2.Action] = []
    reps: dict[str, list[tuple[int, int]]] = {"low": [], "bend": []}
    dips: set[int] = set()
    for k, (label, a, b) in enumerate(runs):
        prev = runs[k - 1] if k else None
        nxt = runs[k + 1] if k + 1 < len(runs) else None
        # The clip may end while a repeated squat or bend comes back up: the last dip of a series, rising
        # in the samples after it, counts like the others.
        rising_at_end = (
            nxt is None
            and bool(reps.get(label))
            and b < len(s.t) - 1
            and abs(float(np.nanmax(thigh[b:]) - thigh[b])) > END_RISE
        )
        if (
            label in reps
            and prev
            and prev[0] == "stand"
            and ((nxt and nxt[0] == "stand") or rising_at_end)
            and (label == "bend" or s.t[b] - s.t[a] <= SQUAT_MAX_S)
        ):
            reps[label].append((a, b))  # a brief dip between standing: squat or bend, counted below
            dips.add(k)
            continue
        if prev is None or k - 1 in dips:
            continue  # standing again after a counted dip is part of that squat or bend
        pa = prev[2]  # the transition runs from the end of the previous posture to the start of this one
        sig = {
            "torso_tilt_deg_before": float(tilt[pa]),
            "torso_tilt_deg_after": float(tilt[a]),
            "thigh_drop_torso_before": float(thigh[pa]),
            "thigh_drop_torso_after": float(thigh[a]),
        }
        phrase = {
            ("low", "stand"): "stands up",
            ("low", "bend"): "stands up",
            ("lie", "stand"): "stands up",
            ("lie", "low"): "sits up",
            ("stand", "low"): "sits down",
            ("bend", "low"): "sits down",
            ("stand", "lie"): "lies down",
            ("low", "lie"): "lies down",
            ("bend", "lie"): "lies down",
        }.get((prev[0], label))
        if label == "bend" and prev[0] == "stand":
            phrase = "bends down"
        if phrase:
            out.append(
                events_pb2.Action(
                    start_s=float(s.t[pa]),
                    end_s=float(s.t[a]),
                    verb_phrase=phrase,
                    body_part="whole body",
                    evidence=evidence(s.t, pa, a, **sig),
                )
            )
    for label, segs in reps.items():
        base, part = ("squats", "legs") if label == "low" else ("bends down", "torso")
        groups: list[list[tuple[int, int]]] = []
        for seg in segs:
            if groups and s.t[seg[0]] - s.t[groups[-1][-1][1]] <= MERGE_GAP_S:
                groups[-1].append(seg)
            else:
                groups.append([seg])
        for g in groups:
            a, b = g[0][0], g[-1][1]
            sig = {
                "min_thigh_drop_torso": float(np.nanmin(thigh[a : b + 1])),
                "max_torso_tilt_deg": float(np.nanmax(tilt[a : b + 1])),
                "peaks": len(g),
            }
            out.append(
                events_pb2.Action(
                    start_s=float(s.t[a]),
                    end_s=float(s.t[b]),
                    verb_phrase=_count_phrase(base, len(g)),
                    body_part=part,
                    repetitions=len(g),
                    evidence=evidence(s.t, a, b, **sig),
                )
            )
    return out


def _locomotion(s: Series) -> tuple[list[tuple[str, int, int]], np.ndarray, np.ndarray]:
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
        if s.t[b] - s.t[a] >= MIN_MOVE_S and (not label.startswith("to the") or _legs_step(s, a, b))
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


def _moving(s: Series) -> np.ndarray:
    """Samples where the body travels (walks or runs) in any direction."""
    moving = np.zeros(len(s.t), dtype=bool)
    for _, a, b in _locomotion(s)[0]:
        moving[a : b + 1] = True
    return moving


def _locomotion_actions(s: Series) -> list[events_pb2.Action]:
    cx = body_centre(s)[:, 0]
    runs, vx, vz = _locomotion(s)
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
                "leg_spread_change_torso": _leg_spread_change(s, a, b),
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


def _turn_actions(s: Series) -> list[events_pb2.Action]:
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
                events_pb2.Action(
                    start_s=float(s.t[last]),
                    end_s=float(s.t[i]),
                    verb_phrase="turns around",
                    body_part="whole body",
                    evidence=evidence(
                        s.t,
                        last,
                        i,
                        shoulder_order_before=float(order[last]),
                        shoulder_order_after=float(order[i]),
                        facing_camera_after=float(f > 0),
                    ),
                )
            )
        last = i
    return out


# --- a wider vocabulary: stepping, knee lifts, balance, reaching, hands, gestures, head, posture ---


def _action(
    s: Series, a: int, b: int, phrase: str, part: str, repetitions: int = 0, **signals: float
) -> events_pb2.Action:
    # Callers that pass their signals as a dict (**sig) name repetitions, so that the type checker knows
    # the dict fills only the signals.
    return events_pb2.Action(
        start_s=float(s.t[a]),
        end_s=float(s.t[b]),
        verb_phrase=phrase,
        body_part=part,
        repetitions=repetitions,
        evidence=evidence(s.t, a, b, **signals),
    )


def _overlaps(a: events_pb2.Action, start_s: float, end_s: float) -> bool:
    return a.start_s <= end_s and start_s <= a.end_s


def _thigh_drops(s: Series) -> tuple[np.ndarray, np.ndarray]:
    """Knee below hip per side (torso lengths): ~0.8 standing, ~0.3 squatting, ~0 with the knee lifted."""
    left = (s.joint("left_knee")[:, 1] - s.joint("left_hip")[:, 1]) / s.scale
    right = (s.joint("right_knee")[:, 1] - s.joint("right_hip")[:, 1]) / s.scale
    return left, right


def _swings(t: np.ndarray, x: np.ndarray, amp: float, max_half_s: float) -> list[tuple[int, int, int]]:
    """Runs of x swinging from beyond +amp to beyond -amp and back, each swing within max_half_s:
    (first extreme, last extreme, number of swings)."""
    side = np.where(x > amp, 1, np.where(x < -amp, -1, 0))
    out: list[tuple[int, int, int]] = []
    start, last, swings = -1, -1, 0
    for i in np.flatnonzero(side):
        if last >= 0 and t[i] - t[last] > max_half_s:  # too slow: the rhythm broke
            if swings:
                out.append((start, last, swings))
            start, swings = -1, 0
        if last >= 0 and side[i] != side[last] and t[i] - t[last] <= max_half_s:
            if start < 0:
                start = last
            swings += 1
        last = int(i)
    if swings:
        out.append((start, last, swings))
    return out


def _arm_straightness(s: Series, a: int, b: int) -> float:
    """Median shoulder-to-wrist distance over the arm's length (1 straight, ~0.7 elbow at a right angle)."""
    values = []
    for side in ("left", "right"):
        sh, el, wr = (s.joint(f"{side}_{j}")[a : b + 1] for j in ("shoulder", "elbow", "wrist"))
        values.append(
            np.linalg.norm(wr - sh, axis=1) / (np.linalg.norm(el - sh, axis=1) + np.linalg.norm(wr - el, axis=1))
        )
    v = np.concatenate(values)
    return float(np.nanmedian(v)) if np.any(~np.isnan(v)) else 1.0


def _leg_difference(s: Series, axis: int) -> np.ndarray:
    """Left minus right ankle along one image axis (torso lengths); where an ankle is unseen, twice the
    knees' difference (a knee moves half as much as its ankle in a stride)."""
    la, ra = s.joint("left_ankle")[:, axis], s.joint("right_ankle")[:, axis]
    lk, rk = s.joint("left_knee")[:, axis], s.joint("right_knee")[:, axis]
    return np.where(np.isnan(la - ra), 2 * (lk - rk), la - ra) / s.scale


def _leg_spread_change(s: Series, a: int, b: int) -> float:
    """How much the feet's spread (front-back or up-down, torso lengths) changes within samples a..b, the
    legs seen in most of them; 0 where they are not. Camera motion over a standing person shifts the box,
    not the spread."""
    change = 0.0
    for axis in (0, 1):
        d = _leg_difference(s, axis)[a : b + 1]
        if np.count_nonzero(~np.isnan(d)) >= max(2, STEP_SEEN_SHARE * len(d)):
            change = max(change, float(np.nanmax(d) - np.nanmin(d)))
    return change


def _legs_step(s: Series, a: int, b: int) -> bool:
    """The legs step within samples a..b: the feet's spread changes by a stride."""
    return _leg_spread_change(s, a, b) >= STEP_SPREAD


def _gait(s: Series) -> list[tuple[int, int, dict[str, float]]]:
    """Stepping from the legs' cadence: the ankles (or, where out of view, the knees) take turns being the
    higher one, whether or not the body crosses the frame (a camera may track the person). Runs (first,
    last, signals)."""
    diff = _leg_difference(s, 1)
    left_drop, right_drop = _thigh_drops(s)
    out = []
    for a, b, swings in _swings(s.t, diff, GAIT_AMP, GAIT_MAX_HALF_S):
        if swings < GAIT_MIN_SWINGS or s.t[b] - s.t[a] < MIN_MOVE_S:
            continue
        sig = {
            "leg_swings": float(swings),
            "strides_per_s": swings / 2 / float(s.t[b] - s.t[a]),
            "leg_amplitude_torso": float(np.nanmedian(np.abs(diff[a : b + 1]))),
            "arm_straightness": _arm_straightness(s, a, b),
            "min_thigh_drop_torso": float(np.nanmin(np.fmin(left_drop, right_drop)[a : b + 1])),
        }
        out.append((a, b, sig))
    return out


def _stepping(s: Series) -> np.ndarray:
    """Samples where the legs step (walk, jog, run; not knee lifts): a lifted swing foot is no kick there."""
    mask = np.zeros(len(s.t), dtype=bool)
    for a, b, sig in _gait(s):
        if sig["min_thigh_drop_torso"] > KNEE_LIFT_DROP:
            mask[a : b + 1] = True
    return mask


def _gait_actions(s: Series, travel: list[events_pb2.Action], moving: np.ndarray) -> list[events_pb2.Action]:
    """Running, jogging or walking from the stepping cadence. Travel already told ("walks to the left")
    becomes "runs ..." when the cadence is a run's; stepping without travel across the frame (in place,
    or with a camera that tracks the person) is told on its own."""
    out: list[events_pb2.Action] = []
    for a, b, sig in _gait(s):
        amplitude, straightness, knee_up = (
            sig["leg_amplitude_torso"],
            sig["arm_straightness"],
            sig["min_thigh_drop_torso"],
        )
        # A runner's elbows are bent at about a right angle and the knees stay below the hips; a marcher's
        # or dancer's arms hang straight while the knees come up to the hips.
        running = amplitude >= RUN_LEG_AMP and straightness < RUN_ARM_STRAIGHT and knee_up > KNEE_LIFT_DROP
        crossing = [x for x in travel if _overlaps(x, float(s.t[a]), float(s.t[b]))]
        for x in crossing:
            if running and x.verb_phrase.startswith("walks"):
                x.verb_phrase = "runs" + x.verb_phrase.removeprefix("walks")
            for k, v in sig.items():
                x.evidence.signals[k] = round(v, 4)
        if crossing or moving[a : b + 1].mean() > 0.5:
            continue
        if running:
            out.append(
                _action(s, a, b, "runs" if amplitude >= SPRINT_LEG_AMP else "jogs", "legs", repetitions=0, **sig)
            )
        elif amplitude < WALK_LEG_AMP_MAX and knee_up > KNEE_LIFT_DROP:
            out.append(_action(s, a, b, "walks", "legs", repetitions=0, **sig))
    return out


def _knee_lift_actions(s: Series, moving: np.ndarray) -> list[events_pb2.Action]:
    """A knee brought up to the hip while the other leg stands straight (marching, dancing), counted. The
    shin hangs below the lifted knee; a kick swings the foot up to the knee's height instead."""
    left, right = _thigh_drops(s)
    shins = {
        side: (s.joint(f"{side}_ankle")[:, 1] - s.joint(f"{side}_knee")[:, 1]) / s.scale for side in ("left", "right")
    }
    lifts = {
        side: [
            (a, b)
            for a, b in true_runs((own < KNEE_LIFT_DROP) & (other > STAND_THIGH_DROP) & (shin > SHIN_HANGS) & ~moving)
        ]
        for side, own, other, shin in (("right", right, left, shins["right"]), ("left", left, right, shins["left"]))
    }
    lowest = np.fmin(left, right)
    if sum(len(v) for v in lifts.values()) < KNEE_LIFT_MIN:
        return []  # a single high kick lifts its knee too (the juggler's last kick): lifts come in series
    if lifts["left"] and lifts["right"]:
        groups = [("their knees", "legs", lifts["left"] + lifts["right"])]
    else:
        groups = [(f"their {side} knee", f"{side} leg", runs) for side, runs in lifts.items() if runs]
    out = []
    for what, part, runs in groups:
        a, b = min(r[0] for r in runs), max(r[1] for r in runs)
        phrase = f"lifts {what}" if part == "legs" else _count_phrase(f"lifts {what}", len(runs))
        out.append(
            _action(
                s,
                a,
                b,
                phrase,
                part,
                len(runs),
                min_thigh_drop_torso=float(np.nanmin(lowest[a : b + 1])),
                peaks=len(runs),
            )
        )
    return out


def _balance_actions(s: Series, moving: np.ndarray) -> list[events_pb2.Action]:
    """Standing on one leg: the other ankle held well above it for BALANCE_MIN_S, the body in place."""
    la, ra = s.joint("left_ankle")[:, 1], s.joint("right_ankle")[:, 1]
    out = []
    for side, standing, lifted in (("left", la, ra), ("right", ra, la)):
        lift = (standing - lifted) / s.scale
        for a, b in long_runs(s.t, (lift > BALANCE_LIFT) & ~moving, BALANCE_MIN_S):
            out.append(
                _action(
                    s,
                    a,
                    b,
                    f"balances on their {side} leg",
                    f"{side} leg",
                    other_ankle_lift_torso=float(np.nanmin(lift[a : b + 1])),
                )
            )
    return out


def _arm_extension(s: Series, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: the wrist's distance from the own torso axis (mid-shoulder to mid-hip segment), the arm's
    straightness (shoulder-to-wrist over the arm's length) and the wrist's height above the shoulder
    (all lengths in torso lengths)."""
    sh, el, wr = (s.joint(f"{side}_{j}") for j in ("shoulder", "elbow", "wrist"))
    top, bottom = s.mid("left_shoulder", "right_shoulder"), s.mid("left_hip", "right_hip")
    axis = bottom - top
    length2 = np.sum(axis**2, axis=1)
    u = np.clip(np.sum((wr - top) * axis, axis=1) / np.where(length2 > 0, length2, np.nan), 0.0, 1.0)
    away = np.linalg.norm(wr - (top + u[:, None] * axis), axis=1) / s.scale
    straight = np.linalg.norm(wr - sh, axis=1) / (np.linalg.norm(el - sh, axis=1) + np.linalg.norm(wr - el, axis=1))
    return away, straight, (sh[:, 1] - wr[:, 1]) / s.scale


def _reach_actions(s: Series) -> list[events_pb2.Action]:
    """Reaching: a straight arm whose wrist goes far from the torso, not above the shoulder (a raised arm
    is told as a raise). An arm thrust out from in front of the chest within PUSH_S is a push; a reach
    held for PULL_HOLD_S and brought back to the body within PULL_S is followed by a pull."""
    out: list[events_pb2.Action] = []
    for side in ("right", "left"):
        away, straight, above = _arm_extension(s, side)
        extended = np.where(
            np.isnan(away), np.nan, np.where((straight > REACH_STRAIGHT) & (above < RAISE_ON), away, 0.0)
        )
        for a, b in true_runs(hysteresis(extended, REACH_OUT, REACH_BACK)):
            # An arm held out from the start (a pose) or seen out for one sample (a keypoint slip) is no reach.
            at_body = np.flatnonzero((s.t >= s.t[a] - REACH_FROM_S) & (s.t < s.t[a]) & (away <= REACH_BACK))
            if not len(at_body) or b - a + 1 < REACH_MIN_SAMPLES:
                continue
            before = np.flatnonzero((s.t >= s.t[a] - PUSH_S) & (s.t < s.t[a]))
            # In front of the chest: near the torso axis, between the shoulders and the waist (a hanging
            # hand is a torso length below the shoulder).
            chest = [i for i in before if away[i] <= REACH_BACK and -CHEST_DEPTH < above[i] < 0.0]
            sig = {
                "wrist_from_torso_torso": float(np.nanmax(away[a : b + 1])),
                "arm_straightness": float(np.nanmax(straight[a : b + 1])),
            }
            if chest:
                out.append(
                    _action(s, int(chest[-1]), b, f"pushes with their {side} arm", f"{side} arm", repetitions=0, **sig)
                )
                continue
            out.append(_action(s, a, b, f"reaches out with their {side} arm", f"{side} arm", repetitions=0, **sig))
            back = [i for i in np.flatnonzero((s.t > s.t[b]) & (s.t <= s.t[b] + PULL_S)) if away[i] <= REACH_BACK]
            if back and s.t[b] - s.t[a] >= PULL_HOLD_S:
                c = int(back[0])
                out.append(
                    _action(
                        s, b, c, f"pulls back their {side} arm", f"{side} arm",
                        wrist_from_torso_before=float(away[b]), wrist_from_torso_after=float(away[c]),
                    )
                )  # fmt: skip
    return out


def _clasp_actions(s: Series, claps: list[events_pb2.Action]) -> list[events_pb2.Action]:
    """Hands held together in front of the chest for CLASP_MIN_S (not clapping), and lowering both arms
    from there to hang at the sides."""
    lw, rw = s.joint("left_wrist"), s.joint("right_wrist")
    sh_y, hip_y = s.mid("left_shoulder", "right_shoulder")[:, 1], s.mid("left_hip", "right_hip")[:, 1]
    d = np.linalg.norm(lw - rw, axis=1) / s.scale
    hand_y = (lw[:, 1] + rw[:, 1]) / 2
    together = (d < CLASP_NEAR) & (hand_y > sh_y - RAISE_ON * s.scale) & (hand_y < hip_y)
    out = []
    for a, b in long_runs(s.t, together, CLASP_MIN_S):
        if any(_overlaps(c, float(s.t[a]), float(s.t[b])) for c in claps):
            continue
        out.append(
            _action(s, a, b, "clasps their hands", "hands", max_wrist_distance_torso=float(np.nanmax(d[a : b + 1])))
        )
        later = np.flatnonzero((s.t > s.t[b]) & (s.t <= s.t[b] + LOWER_S))
        drop = (hand_y[later] - hand_y[b]) / s.scale
        if len(later) and np.nanmax(drop) > LOWER_DROP:
            c = int(later[np.argmax(drop > LOWER_DROP)])  # the first sample with the hands down
            out.append(_action(s, b, c, "lowers their arms", "arms", wrist_drop_torso=float(np.nanmax(drop))))
    return out


def _relative_wrist(s: Series, side: str) -> np.ndarray:
    """The wrist relative to the mid-shoulder (torso lengths): body sway and travel taken out."""
    return (s.joint(f"{side}_wrist") - s.mid("left_shoulder", "right_shoulder")) / s.scale


def _gesture_actions(s: Series, told: list[events_pb2.Action], moving: np.ndarray) -> list[events_pb2.Action]:
    """Gesturing (while talking, signing, explaining): the hands move about in front of the torso, between
    the head and the hips, while the body stays in place (no travel, no leg action: a juggler's or
    dancer's arms swing for balance) and no other arm action explains it."""
    busy = moving.copy()
    for x in told:
        if x.body_part.endswith(("leg", "legs", "whole body")):
            busy |= (s.t >= x.start_s - GESTURE_PAUSE_S) & (s.t <= x.end_s + GESTURE_PAUSE_S)
    spans: dict[str, list[tuple[int, int]]] = {}
    active: dict[str, np.ndarray] = {}
    for side in ("right", "left"):
        rel = _relative_wrist(s, side)
        speed = np.concatenate([[np.nan], np.linalg.norm(np.diff(rel, axis=0), axis=1) / np.diff(s.t)])
        in_front = (rel[:, 1] > -GESTURE_ABOVE) & (rel[:, 1] < GESTURE_BELOW) & (np.abs(rel[:, 0]) < GESTURE_WIDE)
        active[side] = (speed > GESTURE_SPEED) & in_front & ~busy
        for x in told:
            if x.body_part in (f"{side} arm", f"{side} hand", "hands", "arms"):
                active[side] &= ~((s.t >= x.start_s) & (s.t <= x.end_s))
        spans[side] = _gesture_spans(s, active[side])
    out = []
    used: set[tuple[str, int, int]] = set()
    for a, b in spans["right"]:
        partner = [(c, d) for c, d in spans["left"] if c <= b and a <= d]
        if partner:
            used |= {("right", a, b)} | {("left", c, d) for c, d in partner}
            first, last = min([a] + [c for c, _ in partner]), max([b] + [d for _, d in partner])
            moves = float(active["right"][first : last + 1].sum() + active["left"][first : last + 1].sum())
            out.append(_action(s, first, last, "gestures with both hands", "hands", moves=moves))
    for side in ("right", "left"):
        for a, b in spans[side]:
            if (side, a, b) not in used:
                moves = float(active[side][a : b + 1].sum())
                out.append(_action(s, a, b, f"gestures with their {side} hand", f"{side} hand", moves=moves))
    return out


def _gesture_spans(s: Series, active: np.ndarray) -> list[tuple[int, int]]:
    """Spans with GESTURE_MIN_MOVES moving samples, pauses of up to GESTURE_PAUSE_S between them."""
    idx = np.flatnonzero(active)
    spans: list[list[int]] = []
    for i in idx:
        if spans and s.t[i] - s.t[spans[-1][-1]] <= GESTURE_PAUSE_S:
            spans[-1].append(int(i))
        else:
            spans.append([int(i)])
    return [(max(g[0] - 1, 0), g[-1]) for g in spans if len(g) >= GESTURE_MIN_MOVES]


def _head_turn_actions(s: Series, turns: list[events_pb2.Action]) -> list[events_pb2.Action]:
    """The head turns while the shoulders keep facing the same way: the nose shifts sideways against the
    shoulder centre from one held position to another."""
    off = (s.joint("nose")[:, 0] - s.mid("left_shoulder", "right_shoulder")[:, 0]) / s.scale
    _, tilt, _ = _postures(s)
    # Sideways against the shoulders means a head turn only on an upright body (lying down moves it too).
    held = np.where(tilt < UPRIGHT_TILT, smooth(off, 3), np.nan)
    out = []
    i = 0
    n = len(held)
    while i < n:
        if np.isnan(held[i]):
            i += 1
            continue
        later = [j for j in range(i + 1, n) if s.t[j] - s.t[i] <= HEAD_TURN_S and not np.isnan(held[j])]
        # The new position must hold for the next sample too, and one of the two be a profile.
        j = next(
            (
                j
                for j in later
                if abs(held[j] - held[i]) > HEAD_TURN
                and j + 1 < n
                and abs(held[j + 1] - held[i]) > HEAD_TURN
                and max(abs(held[i]), abs(held[j])) > HEAD_TURN / 2
            ),
            -1,
        )
        if j < 0 or any(_overlaps(x, float(s.t[i]), float(s.t[j])) for x in turns):
            i += 1
            continue
        out.append(
            _action(
                s, i, j, "turns their head", "head", nose_offset_before=float(held[i]), nose_offset_after=float(held[j])
            )
        )
        i = j + 1
    return out


def _step_forward_actions(s: Series, told: list[events_pb2.Action]) -> list[events_pb2.Action]:
    """A step or two towards the camera: the body's width (shoulder width, or the ear-to-ear span of a face
    turned to the camera where a shoulder is hidden behind someone) and neck height (nose above the shoulder
    line) grow together by STEP_FORWARD_GROWTH within STEP_FORWARD_MAX_S, and the size then holds, seen in
    STEP_FORWARD_HOLD_SAMPLES samples. Longer approaches are walks (_locomotion); none is told next to another
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
                    _action(
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


def _held_state(s: Series, told: list[events_pb2.Action]) -> events_pb2.Action | None:
    """The state a person holds while not moving their whole body: "stands" or "sits" where the legs show
    the posture over most of the track, "still" added where no more than the head moves or a part moves
    slightly; "stays still" where the legs are unseen but nothing but the head or a slight movement is
    told. Told from the end of a step forward, the track's last whole-body action; none next to travel,
    jumps, posture changes or other whole-body movement."""
    steps = [a for a in told if a.verb_phrase == "steps forward"]
    if any(a.body_part in WHOLE_BODY_PARTS and a not in steps for a in told):
        return None
    first = int(np.searchsorted(s.t, max((a.end_s for a in steps), default=float(s.t[0]))))
    if len(s.t) - first < MIN_POSTURE_SAMPLES or s.t[-1] - s.t[first] < MIN_MOVE_S:
        return None
    small = [a for a in told if a not in steps]
    still = all(a.body_part == "head" or a.verb_phrase.endswith("slightly") for a in small)
    labels, tilt, thigh = _postures(s)
    labels = labels[first:]
    known = [x for x in labels if x]
    if len(known) >= max(MIN_POSTURE_SAMPLES, POSTURE_KNOWN_SHARE * len(labels)):
        for label, phrase in (("stand", "stands"), ("low", "sits")):
            share = known.count(label) / len(known)
            if share >= POSTURE_STATE_SHARE:
                return _action(
                    s,
                    first,
                    len(s.t) - 1,
                    f"{phrase} still" if still else phrase,
                    POSTURE,
                    share=share,
                    median_torso_tilt_deg=float(np.nanmedian(tilt[first:])),
                    median_thigh_drop_torso=float(np.nanmedian(thigh[first:])),
                )
        return None
    if not still:
        return None
    # Legs unseen: the posture is not told (a torso upright above a desk is sitting or standing alike).
    return _action(s, first, len(s.t) - 1, "stays still", POSTURE, posture_known_share=len(known) / len(labels))


def _dance_action(s: Series, told: list[events_pb2.Action], moving: np.ndarray) -> list[events_pb2.Action]:
    """Dancing: several kinds of limb movement, repeated, in one place (kicks, knee lifts, hops, arm swings)."""
    kinds = {_KIND.get(a.verb_phrase.split()[0], "") for a in told} - {""}
    events = sum(max(a.repetitions, 1) for a in told if _KIND.get(a.verb_phrase.split()[0]))
    if len(kinds) < DANCE_MIN_KINDS or events < DANCE_MIN_EVENTS or moving.mean() > 0.5:
        return []
    a = int(np.searchsorted(s.t, min(x.start_s for x in told)))
    b = int(np.searchsorted(s.t, max(x.end_s for x in told)))
    return [
        _action(
            s,
            a,
            min(b, len(s.t) - 1),
            "dances",
            "whole body",
            movement_kinds=float(len(kinds)),
            movements=float(events),
        )
    ]


_KIND = {
    "kicks": "kick",
    "lifts": "knee",
    "jumps": "jump",
    "hops": "jump",
    "raises": "arm",
    "waves": "arm",
    "swings": "arm",
    "claps": "arm",
    "balances": "balance",
}


def _part_paths(s: Series) -> dict[str, np.ndarray]:
    """Each limb end relative to the body: wrists to the mid-shoulder, ankles to the mid-hip, the nose to
    the mid-shoulder (torso lengths), so body travel and camera motion are taken out."""
    shoulders, hips = s.mid("left_shoulder", "right_shoulder"), s.mid("left_hip", "right_hip")
    torso = s.torso[:, None]  # per sample: a person coming closer grows, their gestures do not
    return {
        "right arm": (s.joint("right_wrist") - shoulders) / torso,
        "left arm": (s.joint("left_wrist") - shoulders) / torso,
        "right leg": (s.joint("right_ankle") - hips) / torso,
        "left leg": (s.joint("left_ankle") - hips) / torso,
        "head": (s.joint("nose") - shoulders) / torso,
    }


def _movement_actions(s: Series, force: bool) -> list[events_pb2.Action]:
    """Where no named action fits: which body parts move and how ("swings both arms", "moves their right
    hand to their head"). A part counts when its path relative to the body spans MOVE_RANGE; with
    `force`, the part that moved most is told even below that ("moves their head slightly")."""
    ranges: dict[str, tuple[float, int, int, np.ndarray]] = {}
    for part, path in _part_paths(s).items():
        ok = np.flatnonzero(~np.isnan(path).any(axis=1))
        if len(ok) < 2:
            continue
        centre = np.median(path[ok], axis=0)
        far = np.linalg.norm(path[ok] - centre, axis=1)
        ranges[part] = (float(np.percentile(far, 90) * 2), int(ok[0]), int(ok[-1]), path)
    moved = {p: r for p, r in ranges.items() if r[0] >= MOVE_RANGE}
    if not moved and force and ranges:
        part, (span, a, b, _) = max(ranges.items(), key=lambda kv: kv[1][0])
        return [_action(s, a, b, f"moves their {_PART_NOUN[part]} slightly", part, range_torso=span)]
    out = []
    swinging = [p for p in ("right arm", "left arm") if p in moved and _oscillates(s, moved[p][3])]
    if len(swinging) == 2:
        a, b = min(moved[p][1] for p in swinging), max(moved[p][2] for p in swinging)
        out.append(_action(s, a, b, "swings both arms", "arms", range_torso=max(moved[p][0] for p in swinging)))
    nose = s.joint("nose")
    for part, (span, a, b, path) in moved.items():
        if part in swinging and len(swinging) == 2:
            continue
        noun = _PART_NOUN[part]
        if part in swinging or (part.endswith("leg") and _oscillates(s, path)):
            phrase = f"swings their {noun}"
        elif part.endswith("arm"):
            wrist = s.joint(f"{part.split()[0]}_wrist")
            to_head = np.linalg.norm(wrist - nose, axis=1) / s.scale
            rise = float(path[a, 1] - path[b, 1])
            if to_head[b] < HAND_TO_HEAD and to_head[a] >= HAND_TO_HEAD:
                phrase = f"moves their {part.split()[0]} hand to their head"
            elif rise > MOVE_RANGE:
                phrase = f"lifts their {part.split()[0]} hand"
            elif rise < -MOVE_RANGE:
                phrase = f"lowers their {part.split()[0]} hand"
            else:
                phrase = f"moves their {noun}"
        else:
            phrase = f"moves their {noun}"
        out.append(_action(s, a, b, phrase, part, range_torso=span))
    return out


_PART_NOUN = {
    "right arm": "right arm",
    "left arm": "left arm",
    "right leg": "right leg",
    "left leg": "left leg",
    "head": "head",
}


def _oscillates(s: Series, path: np.ndarray) -> bool:
    """The path goes back and forth along its main direction at least SWING_MIN_REVERSALS times."""
    ok = ~np.isnan(path).any(axis=1)
    if ok.sum() < 4:
        return False
    p = path[ok] - np.median(path[ok], axis=0)
    direction = np.linalg.svd(p, full_matrices=False)[2][0]
    x = p @ direction
    return sum(n for _, _, n in _swings(s.t[ok], x, SWING_AMP, SWING_MAX_HALF_S)) >= SWING_MIN_REVERSALS


def detect_actions(
    track: events_pb2.PersonTrack,
    width: int,
    height: int,
    rules: KinematicsRules,
    *,
    ensure_action: bool = False,
) -> list[events_pb2.Action]:
    """One person's actions from their dense track, in time order (by start, then end).

    Named actions first; where none fits, the body parts that move and how; a person who does not
    move their whole body also gets their held posture ("stands still", body_part POSTURE).
    `ensure_action`: the person is known to move (the action rule accepted them), so at least one
    movement is told, the largest if it is slight.
    """
    s = track_series(track, width, height, rules)
    if len(s.t) < 2:
        return []
    with np.errstate(invalid="ignore", divide="ignore"), quiet():
        moving = _moving(s)
        claps = _clap_actions(s)
        # Clapping hands also swing sideways above the elbows; while clapping, that is not a wave.
        arms = [
            a
            for a in _arm_actions(s)
            if not (a.verb_phrase.startswith("waves") and any(_overlaps(c, a.start_s, a.end_s) for c in claps))
        ]
        travel = _locomotion_actions(s)
        turns = _turn_actions(s)
        jumps_and_kicks = _jump_and_kick_actions(s)
        told = (
            arms
            + claps
            + travel
            + _gait_actions(s, travel, moving)
            + jumps_and_kicks
            + _knee_lift_actions(s, moving)
            + _balance_actions(s, moving)
            + _posture_actions(s)
            + _reach_actions(s)
            + _clasp_actions(s, claps)
            + turns
        )
        told += _gesture_actions(s, told, moving) + _head_turn_actions(s, turns)
        told += _dance_action(s, told, moving)
        told += _step_forward_actions(s, told)
        if not told:
            told = _movement_actions(s, force=ensure_action)
        state = _held_state(s, told)
        if state is not None:
            told.append(state)
    return sorted(told, key=lambda a: (a.start_s, a.end_s, a.verb_phrase))
