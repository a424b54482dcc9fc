"""Where no named action fits, which body parts move and how ("swings both arms", "moves their head
slightly"); and dancing, several kinds of repeated limb movement in one place.
"""

from __future__ import annotations

import numpy as np

from haic.v1 import events_pb2
from services.captioner.kinematics.phrasing import make_action
from services.captioner.kinematics.signals import Series, swing_runs
from services.captioner.kinematics.upper_body import HAND_TO_HEAD

# Dancing: several kinds of limb movement, repeated, in place.
DANCE_MIN_KINDS = 2
DANCE_MIN_EVENTS = 6

# Parts that move without a named action (units: torso lengths, relative to the body).
MOVE_RANGE = 0.4  # a limb end's path spans at least this (standing jitter: ~0.1)
SWING_AMP = 0.15  # a swing goes this far either side of the limb's median position ...
SWING_MAX_HALF_S = 1.0  # ... each way within this long ...
SWING_MIN_REVERSALS = 2  # ... and turns back at least this often


def dance_action(s: Series, told: list[events_pb2.Action], moving: np.ndarray) -> list[events_pb2.Action]:
    """Dancing: several kinds of limb movement, repeated, in one place (kicks, knee lifts, hops, arm swings)."""
    kinds = {_KIND.get(a.verb_phrase.split()[0], "") for a in told} - {""}
    events = sum(max(a.repetitions, 1) for a in told if _KIND.get(a.verb_phrase.split()[0]))
    if len(kinds) < DANCE_MIN_KINDS or events < DANCE_MIN_EVENTS or moving.mean() > 0.5:
        return []
    a = int(np.searchsorted(s.t, min(x.start_s for x in told)))
    b = int(np.searchsorted(s.t, max(x.end_s for x in told)))
    return [
        make_action(
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


def movement_actions(s: Series, force: bool) -> list[events_pb2.Action]:
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
        return [make_action(s, a, b, f"moves their {_PART_NOUN[part]} slightly", part, range_torso=span)]
    out = []
    swinging = [p for p in ("right arm", "left arm") if p in moved and _oscillates(s, moved[p][3])]
    if len(swinging) == 2:
        a, b = min(moved[p][1] for p in swinging), max(moved[p][2] for p in swinging)
        out.append(make_action(s, a, b, "swings both arms", "arms", range_torso=max(moved[p][0] for p in swinging)))
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
        out.append(make_action(s, a, b, phrase, part, range_torso=span))
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
    return sum(n for _, _, n in swing_runs(s.t[ok], x, SWING_AMP, SWING_MAX_HALF_S)) >= SWING_MIN_REVERSALS
