"""Posture from the torso's tilt and the thighs' drop: per-sample labels (standing, low, bending, lying),
the changes between them ("sits down", "stands up", "lies down") and brief dips between standing, counted
("squats three times", "bends down twice"). POSTURE is the body part of a held state.
"""

from __future__ import annotations

import numpy as np

from haic.v1 import events_pb2
from services.captioner.kinematics.phrasing import count_phrase, make_action
from services.captioner.kinematics.signals import Series

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
KNEE_LIFT_DROP = 0.3  # knee less than this below its hip is lifted (standing 0.8, the dancer's lifts -0.25..0.27)

# Held states: the posture (or, where the legs are unseen, stillness) of someone who does not travel, told
# next to small movements ("Initially, they stand still, then turn their head").
POSTURE = "posture"  # Action.body_part of a held posture ("stands", "sits"): a state, not a movement
POSTURE_STATE_SHARE = 0.6  # the posture holds for this share of the samples whose posture is known
POSTURE_KNOWN_SHARE = 0.5  # and the posture is known (legs seen) in at least this share of the samples

# Actions of these body parts move the whole body: no held state is told next to them.
WHOLE_BODY_PARTS = ("whole body", "legs", "torso", "left leg", "right leg")


def posture_labels(s: Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-sample posture ("stand", "low", "bend", "lie", "" unknown), torso tilt and thigh drop."""
    sh, hip = s.mid("left_shoulder", "right_shoulder"), s.mid("left_hip", "right_hip")
    v = sh - hip
    tilt = np.degrees(np.arctan2(np.abs(v[:, 0]), -v[:, 1]))
    # Sitting and squatting bring both thighs up; one knee lifted (marching, dancing) is no low posture.
    left, right = thigh_drops(s)
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


def posture_actions(s: Series) -> list[events_pb2.Action]:
    labels, tilt, thigh = posture_labels(s)
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
            out.append(make_action(s, pa, a, phrase, "whole body", 0, **sig))
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
            out.append(make_action(s, a, b, count_phrase(base, len(g)), part, len(g), **sig))
    return out


def thigh_drops(s: Series) -> tuple[np.ndarray, np.ndarray]:
    """Knee below hip per side (torso lengths): ~0.8 standing, ~0.3 squatting, ~0 with the knee lifted."""
    left = (s.joint("left_knee")[:, 1] - s.joint("left_hip")[:, 1]) / s.scale
    right = (s.joint("right_knee")[:, 1] - s.joint("right_hip")[:, 1]) / s.scale
    return left, right
