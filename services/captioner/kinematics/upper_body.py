"""Arms, hands and head: raising, lowering and waving an arm, clapping, reaching out, pushing and pulling
back, clasping and lowering the hands, gesturing in front of the torso, and turning the head.
"""

from __future__ import annotations

import itertools

import numpy as np

from haic.v1 import events_pb2
from services.captioner.kinematics.phrasing import count_phrase, make_action, overlaps
from services.captioner.kinematics.posture import UPRIGHT_TILT, posture_labels
from services.captioner.kinematics.signals import Series, hysteresis, long_runs, smooth, true_runs

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
HAND_TO_HEAD = 0.5  # a wrist this close to the nose (torso lengths) is at the head


def arm_actions(s: Series) -> list[events_pb2.Action]:
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
                    make_action(
                        s,
                        a,
                        b,
                        f"waves their {side} hand",
                        f"{side} hand",
                        wrist_swing_torso=float(np.nanmax(u) - np.nanmin(u)),
                        strokes=strokes + 1,
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
                        make_action(
                            s,
                            b,
                            b + 1,
                            f"lowers their {side} arm",
                            part,
                            wrist_above_shoulder_torso=float(r[b]),
                            after=float(r[b + 1]),
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
                make_action(
                    s,
                    a,
                    b,
                    count_phrase(what, len(raises)),
                    part,
                    len(raises),
                    wrist_above_shoulder_px=peak * s.scale,
                    wrist_above_shoulder_torso=peak,
                    wrist_to_nose_torso=float(np.nanmin(to_head[a : b + 1])),
                    peaks=len(raises),
                )
            )
    return out


def clap_actions(s: Series) -> list[events_pb2.Action]:
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
        make_action(
            s,
            a,
            b,
            count_phrase("claps", len(meets)),
            "hands",
            len(meets),
            min_wrist_distance_torso=float(np.nanmin(d)),
            peaks=len(meets),
        )
    ]


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


def reach_actions(s: Series) -> list[events_pb2.Action]:
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
                    make_action(
                        s, int(chest[-1]), b, f"pushes with their {side} arm", f"{side} arm", repetitions=0, **sig
                    )
                )
                continue
            out.append(make_action(s, a, b, f"reaches out with their {side} arm", f"{side} arm", repetitions=0, **sig))
            back = [i for i in np.flatnonzero((s.t > s.t[b]) & (s.t <= s.t[b] + PULL_S)) if away[i] <= REACH_BACK]
            if back and s.t[b] - s.t[a] >= PULL_HOLD_S:
                c = int(back[0])
                out.append(
                    make_action(
                        s, b, c, f"pulls back their {side} arm", f"{side} arm",
                        wrist_from_torso_before=float(away[b]), wrist_from_torso_after=float(away[c]),
                    )
                )  # fmt: skip
    return out


def clasp_actions(s: Series, claps: list[events_pb2.Action]) -> list[events_pb2.Action]:
    """Hands held together in front of the chest for CLASP_MIN_S (not clapping), and lowering both arms
    from there to hang at the sides."""
    lw, rw = s.joint("left_wrist"), s.joint("right_wrist")
    sh_y, hip_y = s.mid("left_shoulder", "right_shoulder")[:, 1], s.mid("left_hip", "right_hip")[:, 1]
    d = np.linalg.norm(lw - rw, axis=1) / s.scale
    hand_y = (lw[:, 1] + rw[:, 1]) / 2
    together = (d < CLASP_NEAR) & (hand_y > sh_y - RAISE_ON * s.scale) & (hand_y < hip_y)
    out = []
    for a, b in long_runs(s.t, together, CLASP_MIN_S):
        if any(overlaps(c, float(s.t[a]), float(s.t[b])) for c in claps):
            continue
        out.append(
            make_action(s, a, b, "clasps their hands", "hands", max_wrist_distance_torso=float(np.nanmax(d[a : b + 1])))
        )
        later = np.flatnonzero((s.t > s.t[b]) & (s.t <= s.t[b] + LOWER_S))
        drop = (hand_y[later] - hand_y[b]) / s.scale
        if len(later) and np.nanmax(drop) > LOWER_DROP:
            c = int(later[np.argmax(drop > LOWER_DROP)])  # the first sample with the hands down
            out.append(make_action(s, b, c, "lowers their arms", "arms", wrist_drop_torso=float(np.nanmax(drop))))
    return out


def _relative_wrist(s: Series, side: str) -> np.ndarray:
    """The wrist relative to the mid-shoulder (torso lengths): body sway and travel taken out."""
    return (s.joint(f"{side}_wrist") - s.mid("left_shoulder", "right_shoulder")) / s.scale


def gesture_actions(s: Series, told: list[events_pb2.Action], moving: np.ndarray) -> list[events_pb2.Action]:
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
            out.append(make_action(s, first, last, "gestures with both hands", "hands", moves=moves))
    for side in ("right", "left"):
        for a, b in spans[side]:
            if (side, a, b) not in used:
                moves = float(active[side][a : b + 1].sum())
                out.append(make_action(s, a, b, f"gestures with their {side} hand", f"{side} hand", moves=moves))
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


def head_turn_actions(s: Series, turns: list[events_pb2.Action]) -> list[events_pb2.Action]:
    """The head turns while the shoulders keep facing the same way: the nose shifts sideways against the
    shoulder centre from one held position to another."""
    off = (s.joint("nose")[:, 0] - s.mid("left_shoulder", "right_shoulder")[:, 0]) / s.scale
    _, tilt, _ = posture_labels(s)
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
        if j < 0 or any(overlaps(x, float(s.t[i]), float(s.t[j])) for x in turns):
            i += 1
            continue
        out.append(
            make_action(
                s, i, j, "turns their head", "head", nose_offset_before=float(held[i]), nose_offset_after=float(held[j])
            )
        )
        i = j + 1
    return out
