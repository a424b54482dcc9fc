"""Actions and interactions from pose kinematics: the pose-grounded captioner's facts.

Every detector works on one person's dense track (samples at ~4 fps, 17 COCO keypoints in
source-video pixels, image y growing downwards). Keypoints below a confidence threshold become NaN
and short gaps are interpolated, so missing samples neither invent nor break events. Distances are
divided by the person's torso length (mid-shoulder to mid-hip) or box height, so thresholds hold at
any resolution and camera distance. Left/right in verb phrases are the person's own (COCO names);
directions are the image's: "left" means the body centre moves towards smaller x.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from haic.v1 import events_pb2
from services.pose.contract import COCO_KEYPOINTS, NUM_KEYPOINTS

KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}

DEFAULT_MIN_SCORE = 0.2  # keypoints below this confidence are treated as missing
MAX_GAP_S = 1.0  # interpolate over gaps up to this long; longer gaps stay missing (no event spans them)

# Arms (units: torso lengths).
RAISE_ON = 0.15  # wrist this far above the shoulder counts as raised
RAISE_OFF = 0.0  # and it counts as lowered again once back below the shoulder (hysteresis against jitter)
WAVE_LIFT = 0.3  # a waving forearm points up: wrist this far above the elbow (hands clapping in front do not)
WAVE_SWING = 0.2  # wrist-minus-elbow x must swing this far either side of its mean to count a wave stroke
WAVE_MIN_STROKES = 3  # at least 3 strokes (left-right-left) make a wave rather than a single gesture
CLAP_NEAR = 0.3  # wrists closer than this have met
CLAP_FAR = 0.6  # and must part beyond this before the next meeting counts
CLAP_MIN = 2  # one meeting is a hand clasp, repeated meetings are clapping

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
SQUAT_MAX_S = 3.0  # a low posture that returns to standing within this is a squat, longer is sitting
MERGE_GAP_S = 2.0  # repeated squats/bends closer than this are one counted action

# Locomotion (units: box heights per second, or log box height per second for depth).
WALK_SPEED = 0.25  # body centre moving faster than this sideways is walking
RUN_SPEED = 1.3  # and faster than this is running (walking ~0.8, running ~1.8 body heights/s)
DEPTH_RATE = 0.12  # box height growing/shrinking faster than this (ln units/s) is moving in depth
RUN_DEPTH_RATE = 0.6  # and this fast in depth is running
MIN_MOVE_S = 1.0  # locomotion must last this long
VELOCITY_WINDOW_S = 1.0  # velocities are measured over this window to average out the gait's sway

# Turning (units: torso lengths).
TURN_ORDER = 0.2  # left-minus-right shoulder x beyond this tells facing the camera from facing away

# Interactions (units: mean box height of the pair).
APPROACH_RATE = 0.15  # centre distance shrinking/growing faster than this per second
APPROACH_MIN = 0.3  # and by at least this much overall
MIN_INTERACT_S = 1.0  # approaching/apart/facing/following must hold this long
TOUCH_MARGIN = 0.05  # the other's box is grown by this before testing the wrist against it
FACE_OFFSET = 0.1  # nose offset from the shoulder centre (torso lengths) that shows a side-facing head
FOLLOW_DIST = 0.5  # the follower's feet come within this of where the leader's feet were
FOLLOW_LAG_S = (0.5, 4.0)  # range of delays searched for the leader's earlier position
FOLLOW_COS = 0.7  # both move in nearly the same direction
ALIGN_TOL_S = 0.15  # samples of two tracks closer than this in time are taken as simultaneous

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


class KinematicsInputError(ValueError):
    """A track or frame size the kinematics cannot use (wrong keypoint count, non-positive size)."""

    def __init__(self, track_id: int, message: str) -> None:
        super().__init__(f"track {track_id}: {message}")
        self.track_id = track_id


@dataclass(frozen=True)
class _Series:
    """One track as arrays; NaN marks a missing value."""

    track_id: int
    t: np.ndarray  # (n,) seconds, increasing
    kp: np.ndarray  # (n, 17, 2) pixels
    box: np.ndarray  # (n, 4) x1, y1, x2, y2 pixels
    scale: float  # median torso length, pixels
    height: float  # median box height, pixels

    def joint(self, name: str) -> np.ndarray:
        return self.kp[:, KP[name]]

    def mid(self, a: str, b: str) -> np.ndarray:
        # The mean of both sides, or whichever side is visible.
        return np.nanmean(np.stack([self.joint(a), self.joint(b)]), axis=0) if len(self.t) else self.joint(a)


class _quiet:
    """Silences numpy's 'mean of empty slice' warnings: all-NaN inputs legitimately give NaN."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def _count_phrase(base: str, n: int) -> str:
    if n <= 1:
        return base
    return f"{base} {_COUNT_WORDS.get(n, f'{n} times')}"


def _interp_gaps(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN runs no longer than MAX_GAP_S; leading/trailing NaNs stay."""
    out = x.copy()
    ok = ~np.isnan(x)
    if ok.sum() < 2:
        return out
    idx = np.flatnonzero(ok)
    for a, b in itertools.pairwise(idx):
        if b - a > 1 and t[b] - t[a] <= MAX_GAP_S:
            out[a + 1 : b] = np.interp(t[a + 1 : b], [t[a], t[b]], [x[a], x[b]])
    return out


def _smooth(x: np.ndarray, k: int = 3) -> np.ndarray:
    """NaN-aware centred moving average over k samples."""
    if k <= 1 or len(x) == 0:
        return x.copy()
    half = k // 2
    out = np.full_like(x, np.nan)
    for i in range(len(x)):
        w = x[max(0, i - half) : i + half + 1]
        if np.any(~np.isnan(w)):
            out[i] = np.nanmean(w)
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index ranges of True runs."""
    out: list[tuple[int, int]] = []
    start = -1
    for i, v in enumerate(mask):
        if v and start < 0:
            start = i
        elif not v and start >= 0:
            out.append((start, i - 1))
            start = -1
    if start >= 0:
        out.append((start, len(mask) - 1))
    return out


def _hysteresis(x: np.ndarray, on: float, off: float) -> np.ndarray:
    """True from where x rises above `on` until it falls below `off`; NaN ends a run."""
    out = np.zeros(len(x), dtype=bool)
    state = False
    for i, v in enumerate(x):
        if np.isnan(v):
            state = False
        elif state:
            state = v >= off
        else:
            state = v > on
        out[i] = state
    return out


def _velocity(t: np.ndarray, x: np.ndarray, window_s: float) -> np.ndarray:
    """Per-sample slope of x over a centred window (least squares), NaN where too few points."""
    out = np.full(len(x), np.nan)
    for i in range(len(x)):
        sel = (np.abs(t - t[i]) <= window_s / 2) & ~np.isnan(x)
        if sel.sum() >= 2 and np.ptp(t[sel]) > 0:
            out[i] = np.polyfit(t[sel], x[sel], 1)[0]
    return out


def _evidence(t: np.ndarray, a: int, b: int, **signals: float) -> events_pb2.Evidence:
    return events_pb2.Evidence(
        start_s=float(t[a]), end_s=float(t[b]), signals={k: round(float(v), 4) for k, v in signals.items()}
    )


def _series(track: events_pb2.PersonTrack, width: int, height: int, min_score: float) -> _Series:
    if width <= 0 or height <= 0:
        raise KinematicsInputError(track.track_id, f"frame size must be positive, got {width}x{height}")
    samples = sorted(track.samples, key=lambda s: s.t_s)
    n = len(samples)
    t = np.array([s.t_s for s in samples], dtype=float)
    kp = np.full((n, NUM_KEYPOINTS, 2), np.nan)
    box = np.full((n, 4), np.nan)
    for i, s in enumerate(samples):
        if len(s.keypoints) not in (0, NUM_KEYPOINTS):
            raise KinematicsInputError(track.track_id, f"sample at {s.t_s:.2f}s has {len(s.keypoints)} keypoints")
        for j, k in enumerate(s.keypoints):
            if k.score >= min_score:
                kp[i, j] = (k.x, k.y)
        if s.HasField("box") and s.box.y2 > s.box.y1:
            box[i] = (s.box.x1, s.box.y1, s.box.x2, s.box.y2)
    for j in range(NUM_KEYPOINTS):
        for c in range(2):
            kp[:, j, c] = _interp_gaps(t, kp[:, j, c])
    for c in range(4):
        box[:, c] = _interp_gaps(t, box[:, c])
    heights = box[:, 3] - box[:, 1]
    med_h = float(np.nanmedian(heights)) if np.any(~np.isnan(heights)) else float(height) / 2
    s0 = _Series(track.track_id, t, kp, box, 1.0, med_h)
    with np.errstate(invalid="ignore"), _quiet():
        torso = np.linalg.norm(s0.mid("left_shoulder", "right_shoulder") - s0.mid("left_hip", "right_hip"), axis=1)
    torso = torso[~np.isnan(torso)]
    # A torso is about a third of the standing height; fall back on that when no torso is visible.
    scale = float(np.median(torso)) if len(torso) else med_h / 3
    return _Series(track.track_id, t, kp, box, max(scale, 1.0), max(med_h, 1.0))


# --- per-person primitives ---


def _arm_actions(s: _Series) -> list[events_pb2.Action]:
    out: list[events_pb2.Action] = []
    n = len(s.t)
    for side in ("right", "left"):
        shoulder, elbow, wrist = (s.joint(f"{side}_{j}") for j in ("shoulder", "elbow", "wrist"))
        part = f"{side} arm"
        # Waving: wrist above the elbow, its x swinging about the elbow.
        above_elbow = (elbow[:, 1] - wrist[:, 1]) / s.scale > WAVE_LIFT
        waved = np.zeros(n, dtype=bool)
        for a, b in _runs(above_elbow):
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
                        evidence=_evidence(
                            s.t, a, b, wrist_swing_torso=float(np.nanmax(u) - np.nanmin(u)), strokes=strokes + 1
                        ),
                    )
                )
        r = (shoulder[:, 1] - wrist[:, 1]) / s.scale  # >0: wrist above shoulder
        raised = _hysteresis(r, RAISE_ON, RAISE_OFF)
        raises: list[tuple[int, int]] = []
        for a, b in _runs(raised):
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
                            evidence=_evidence(
                                s.t, b, b + 1, wrist_above_shoulder_torso=float(r[b]), after=float(r[b + 1])
                            ),
                        )
                    )
                continue
            raises.append((a, b))
        if raises:
            a, b = raises[0][0], raises[-1][1]
            peak = max(float(np.nanmax(r[x : y + 1])) for x, y in raises)
            out.append(
                events_pb2.Action(
                    start_s=float(s.t[a]),
                    end_s=float(s.t[b]),
                    verb_phrase=_count_phrase(f"raises their {side} arm", len(raises)),
                    body_part=part,
                    repetitions=len(raises),
                    evidence=_evidence(
                        s.t,
                        a,
                        b,
                        wrist_above_shoulder_px=peak * s.scale,
                        wrist_above_shoulder_torso=peak,
                        peaks=len(raises),
                    ),
                )
            )
    return out


def _clap_actions(s: _Series) -> list[events_pb2.Action]:
    lw, rw = s.joint("left_wrist"), s.joint("right_wrist")
    d = np.linalg.norm(lw - rw, axis=1) / s.scale
    hip_y = s.mid("left_hip", "right_hip")[:, 1]
    # Hands must be in front of the body (above the hips) so arms hanging together do not count.
    d = np.where(np.fmax(lw[:, 1], rw[:, 1]) < hip_y, d, np.nan)
    meets = _runs(_hysteresis(-d, -CLAP_NEAR, -CLAP_FAR))
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
            evidence=_evidence(s.t, a, b, min_wrist_distance_torso=float(np.nanmin(d)), peaks=len(meets)),
        )
    ]


def _rise(s: _Series, y: np.ndarray) -> np.ndarray:
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


def _jump_and_kick_actions(s: _Series) -> list[events_pb2.Action]:
    out: list[events_pb2.Action] = []
    hip_rise = _rise(s, s.mid("left_hip", "right_hip")[:, 1])
    la_rise, ra_rise = _rise(s, s.joint("left_ankle")[:, 1]), _rise(s, s.joint("right_ankle")[:, 1])
    both = np.fmin(hip_rise, np.fmin(la_rise, ra_rise))  # every part must rise: a body leaving the ground
    jumps = _runs(_hysteresis(both, JUMP_RISE_ON, JUMP_RISE_OFF))
    if jumps:
        a, b = jumps[0][0], jumps[-1][1]
        out.append(
            events_pb2.Action(
                start_s=float(s.t[a]),
                end_s=float(s.t[b]),
                verb_phrase=_count_phrase("jumps", len(jumps)),
                body_part="whole body",
                repetitions=len(jumps),
                evidence=_evidence(
                    s.t,
                    a,
                    b,
                    max_rise_torso=float(np.nanmax(both)),
                    max_rise_px=float(np.nanmax(both)) * s.scale,
                    peaks=len(jumps),
                ),
            )
        )
    moving = _moving(s)
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
        kicking = (lift > KICK_LIFT) & (rise[other] < GROUND_RISE) & (~moving | (above_knee > KICK_ABOVE_KNEE))
        kicks = _runs(kicking)
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
                    evidence=_evidence(
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


def _postures(s: _Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-sample posture ("stand", "low", "bend", "lie", "" unknown), torso tilt and thigh drop."""
    sh, hip = s.mid("left_shoulder", "right_shoulder"), s.mid("left_hip", "right_hip")
    knee_y = s.mid("left_knee", "right_knee")[:, 1]
    v = sh - hip
    tilt = np.degrees(np.arctan2(np.abs(v[:, 0]), -v[:, 1]))
    thigh = (knee_y - hip[:, 1]) / s.scale
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


def _posture_actions(s: _Series) -> list[events_pb2.Action]:
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
        if (
            label in reps
            and prev
            and prev[0] == "stand"
            and nxt
            and nxt[0] == "stand"
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
                    evidence=_evidence(s.t, pa, a, **sig),
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
                    evidence=_evidence(s.t, a, b, **sig),
                )
            )
    return out


def _centre(s: _Series) -> np.ndarray:
    """Body centre: the box centre, or the mid-hip when there is no box."""
    c = np.stack([(s.box[:, 0] + s.box[:, 2]) / 2, (s.box[:, 1] + s.box[:, 3]) / 2], axis=1)
    return np.where(np.isnan(c), s.mid("left_hip", "right_hip"), c)


def _locomotion(s: _Series) -> tuple[list[tuple[str, int, int]], np.ndarray, np.ndarray]:
    """Runs (direction, first, last) of travel lasting at least MIN_MOVE_S, and the per-sample sideways
    speed (box heights per second, + = image right) and depth rate (ln box height per second)."""
    vx = _velocity(s.t, _centre(s)[:, 0], VELOCITY_WINDOW_S) / s.height
    with _quiet():
        vz = _velocity(s.t, np.log(s.box[:, 3] - s.box[:, 1]), VELOCITY_WINDOW_S)
    labels: list[str] = []
    for x, z in zip(vx, vz, strict=True):
        lateral = abs(x) > WALK_SPEED if not np.isnan(x) else False
        depth = abs(z) > DEPTH_RATE if not np.isnan(z) else False
        # The stronger relative motion names the direction (both are fractions of the body per second).
        if depth and (not lateral or abs(z) > abs(x)):
            labels.append("towards the camera" if z > 0 else "away from the camera")
        elif lateral:
            labels.append("to the left" if x < 0 else "to the right")
        else:
            labels.append("")
    runs = [
        (label, a, b)
        for label in ("to the left", "to the right", "towards the camera", "away from the camera")
        for a, b in _runs(np.array([lab == label for lab in labels], dtype=bool))
        if s.t[b] - s.t[a] >= MIN_MOVE_S
    ]
    return runs, vx, vz


def _moving(s: _Series) -> np.ndarray:
    """Samples where the body travels (walks or runs) in any direction."""
    moving = np.zeros(len(s.t), dtype=bool)
    for _, a, b in _locomotion(s)[0]:
        moving[a : b + 1] = True
    return moving


def _locomotion_actions(s: _Series) -> list[events_pb2.Action]:
    cx = _centre(s)[:, 0]
    runs, vx, vz = _locomotion(s)
    out: list[events_pb2.Action] = []
    for label, a, b in runs:
        dt = float(s.t[b] - s.t[a])
        if label.startswith("to the"):
            speed = float(np.nanmedian(np.abs(vx[a : b + 1])))
            running = speed > RUN_SPEED
            sig = {"displacement_px": float(cx[b] - cx[a]), "speed_body_heights_per_s": speed}
        else:
            speed = float(np.nanmedian(np.abs(vz[a : b + 1])))
            running = speed > RUN_DEPTH_RATE
            h = s.box[:, 3] - s.box[:, 1]
            sig = {"box_height_ratio": float(h[b] / h[a]), "log_height_rate_per_s": speed}
        sig["duration_s"] = dt
        verb = "runs" if running else "walks"
        out.append(
            events_pb2.Action(
                start_s=float(s.t[a]),
                end_s=float(s.t[b]),
                verb_phrase=f"{verb} {label}",
                body_part="whole body",
                direction=label.removeprefix("to the "),
                evidence=_evidence(s.t, a, b, **sig),
            )
        )
    return out


def _turn_actions(s: _Series) -> list[events_pb2.Action]:
    # Facing the camera the person's left shoulder is on the image right: left x - right x > 0.
    order = (s.joint("left_shoulder")[:, 0] - s.joint("right_shoulder")[:, 0]) / s.scale
    facing = np.where(order > TURN_ORDER, 1, np.where(order < -TURN_ORDER, -1, 0))
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
                    evidence=_evidence(
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


def detect_actions(
    track: events_pb2.PersonTrack, width: int, height: int, *, min_score: float = DEFAULT_MIN_SCORE
) -> list[events_pb2.Action]:
    """One person's actions from their dense track, in time order (by start, then end)."""
    s = _series(track, width, height, min_score)
    if len(s.t) < 2:
        return []
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        claps = _clap_actions(s)
        # Clapping hands also swing sideways above the elbows; while clapping, that is not a wave.
        arms = [
            a
            for a in _arm_actions(s)
            if not (
                a.verb_phrase.startswith("waves") and any(a.start_s <= c.end_s and c.start_s <= a.end_s for c in claps)
            )
        ]
        actions = (
            arms + claps + _jump_and_kick_actions(s) + _posture_actions(s) + _locomotion_actions(s) + _turn_actions(s)
        )
    return sorted(actions, key=lambda a: (a.start_s, a.end_s, a.verb_phrase))


# --- interactions ---


def _align(a: _Series, b: _Series) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (ia, ib) of samples taken at the same time in both tracks."""
    if not len(a.t) or not len(b.t):
        return np.array([], dtype=int), np.array([], dtype=int)
    j = np.clip(np.searchsorted(b.t, a.t), 1, len(b.t) - 1) if len(b.t) > 1 else np.zeros(len(a.t), dtype=int)
    if len(b.t) > 1:
        j = np.where(np.abs(b.t[j - 1] - a.t) <= np.abs(b.t[j] - a.t), j - 1, j)
    ok = np.abs(b.t[j] - a.t) <= ALIGN_TOL_S
    return np.flatnonzero(ok), j[ok]


def _long_runs(t: np.ndarray, mask: np.ndarray, min_s: float) -> Iterable[tuple[int, int]]:
    return (r for r in _runs(mask) if t[r[1]] - t[r[0]] >= min_s)


def _facing_x(s: _Series) -> np.ndarray:
    """+1 when the head points to image right, -1 to the left, 0 frontal or unknown."""
    off = (s.joint("nose")[:, 0] - s.mid("left_shoulder", "right_shoulder")[:, 0]) / s.scale
    return np.where(off > FACE_OFFSET, 1, np.where(off < -FACE_OFFSET, -1, 0))


def _pair_interactions(a: _Series, b: _Series, la: str, lb: str) -> list[events_pb2.Interaction]:
    ia, ib = _align(a, b)
    if len(ia) < 2:
        return []
    t = a.t[ia]
    ca, cb = _centre(a)[ia], _centre(b)[ib]
    scale = (a.height + b.height) / 2
    dist = np.linalg.norm(ca - cb, axis=1) / scale
    rate = _velocity(t, dist, VELOCITY_WINDOW_S)
    out: list[events_pb2.Interaction] = []

    def add(kind: str, x: int, y: int, subj: str, obj: str, **sig: float) -> None:
        out.append(
            events_pb2.Interaction(
                start_s=float(t[x]),
                end_s=float(t[y]),
                kind=kind,
                subject_label=subj,
                object_label=obj,
                evidence=_evidence(t, x, y, **sig),
            )
        )

    for kind, sign in (("approaching", -1.0), ("moving apart", 1.0)):
        for x, y in _long_runs(t, sign * rate > APPROACH_RATE, MIN_INTERACT_S):
            change = float(dist[y] - dist[x])
            if sign * change < APPROACH_MIN:
                continue
            # The one who covered more of the change is the subject ("A approaches B").
            towards = (cb[x] - ca[x]) / max(float(np.linalg.norm(cb[x] - ca[x])), 1e-6)
            move_a = abs(float(np.dot(ca[y] - ca[x], towards)))
            move_b = abs(float(np.dot(cb[y] - cb[x], towards)))
            subj, obj = (la, lb) if move_a >= move_b else (lb, la)
            add(
                kind,
                x,
                y,
                subj,
                obj,
                distance_before_body_heights=float(dist[x]),
                distance_after_body_heights=float(dist[y]),
                rate_body_heights_per_s=float(np.nanmean(rate[x : y + 1])),
                move_a_px=move_a,
                move_b_px=move_b,
            )

    for p, q, ip, iq, lp, lq in ((a, b, ia, ib, la, lb), (b, a, ib, ia, lb, la)):
        box = q.box[iq]
        m = TOUCH_MARGIN * q.height
        own_cx, other_cx = _centre(p)[ip][:, 0], _centre(q)[iq][:, 0]
        touch = np.zeros(len(ip), dtype=bool)
        for side in ("left", "right"):
            w = p.joint(f"{side}_wrist")[ip]
            inside = (
                (w[:, 0] >= box[:, 0] - m)
                & (w[:, 0] <= box[:, 2] + m)
                & (w[:, 1] >= box[:, 1] - m)
                & (w[:, 1] <= box[:, 3] + m)
            )
            # Overlapping boxes put a hanging hand inside the other's box; a touch reaches out to them.
            reach = np.abs(w[:, 0] - other_cx) < np.abs(w[:, 0] - own_cx)
            touch |= inside & reach
        for x, y in _runs(touch):
            add(
                "touching",
                x,
                y,
                lp,
                lq,
                wrist_in_box_samples=float(y - x + 1),
                centre_distance_body_heights=float(np.nanmin(dist[x : y + 1])),
            )

    fa, fb = _facing_x(a)[ia], _facing_x(b)[ib]
    towards_b = np.sign(cb[:, 0] - ca[:, 0])
    facing = (fa != 0) & (fa == towards_b) & (fb == -towards_b)
    for x, y in _long_runs(t, facing, MIN_INTERACT_S):
        add(
            "facing each other",
            x,
            y,
            la,
            lb,
            samples=float(y - x + 1),
            centre_distance_body_heights=float(np.nanmean(dist[x : y + 1])),
        )

    for p, q, ip, lp, lq in ((a, b, ia, la, lb), (b, a, ib, lb, la)):
        out.extend(_following(p, q, ip, t, scale, lp, lq))
    return out


def _following(
    p: _Series, q: _Series, ip: np.ndarray, t: np.ndarray, scale: float, lp: str, lq: str
) -> list[events_pb2.Interaction]:
    """p follows q: p's feet pass where q's feet were a moment ago, both heading the same way."""
    feet_p = np.stack([(p.box[:, 0] + p.box[:, 2]) / 2, p.box[:, 3]], axis=1)[ip]
    feet_q_all = np.stack([(q.box[:, 0] + q.box[:, 2]) / 2, q.box[:, 3]], axis=1)
    okq = ~np.isnan(feet_q_all).any(axis=1)
    if okq.sum() < 2:
        return []
    tq, fq = q.t[okq], feet_q_all[okq]
    vp = np.stack([_velocity(t, feet_p[:, c], VELOCITY_WINDOW_S) for c in range(2)], axis=1) / scale
    vq_all = np.stack([_velocity(tq, fq[:, c], VELOCITY_WINDOW_S) for c in range(2)], axis=1) / scale
    vq = np.stack([np.interp(t, tq, vq_all[:, c]) for c in range(2)], axis=1)
    lags = np.arange(FOLLOW_LAG_S[0], FOLLOW_LAG_S[1] + 1e-9, 0.25)
    follow = np.zeros(len(t), dtype=bool)
    best_lag = np.full(len(t), np.nan)
    for i in range(len(t)):
        sp, sq = float(np.linalg.norm(vp[i])), float(np.linalg.norm(vq[i]))
        if not (sp > WALK_SPEED and sq > WALK_SPEED) or np.dot(vp[i], vq[i]) / (sp * sq) < FOLLOW_COS:
            continue
        ahead = np.array([np.interp(t[i], tq, fq[:, c]) for c in range(2)]) - feet_p[i]
        if np.dot(ahead, vp[i]) <= 0:
            continue  # the leader must be ahead in the direction of travel
        valid = lags[t[i] - lags >= tq[0]]
        if not len(valid):
            continue
        earlier = np.stack([np.interp(t[i] - valid, tq, fq[:, c]) for c in range(2)], axis=1)
        d = np.linalg.norm(earlier - feet_p[i], axis=1) / scale
        k = int(np.argmin(d))
        if d[k] < FOLLOW_DIST:
            follow[i], best_lag[i] = True, valid[k]
    return [
        events_pb2.Interaction(
            start_s=float(t[x]),
            end_s=float(t[y]),
            kind="following",
            subject_label=lp,
            object_label=lq,
            evidence=_evidence(
                t, x, y, median_lag_s=float(np.nanmedian(best_lag[x : y + 1])), samples=float(y - x + 1)
            ),
        )
        for x, y in _long_runs(t, follow, MIN_INTERACT_S)
    ]


def detect_interactions(
    tracks: list[events_pb2.PersonTrack],
    labels: dict[int, str],
    width: int,
    height: int,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
) -> list[events_pb2.Interaction]:
    """Pairwise interactions between tracked people, in time order; labels map track_id to a subject label."""
    series = [_series(tr, width, height, min_score) for tr in tracks]
    out: list[events_pb2.Interaction] = []
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        for i in range(len(series)):
            for j in range(i + 1, len(series)):
                a, b = series[i], series[j]
                la = labels.get(a.track_id, f"person {a.track_id}")
                lb = labels.get(b.track_id, f"person {b.track_id}")
                out.extend(_pair_interactions(a, b, la, lb))
    return sorted(out, key=lambda x: (x.start_s, x.end_s, x.kind))


__all__ = ["DEFAULT_MIN_SCORE", "KinematicsInputError", "detect_actions", "detect_interactions"]
