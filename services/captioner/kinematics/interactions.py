"""Interactions between two tracked people from their kinematics.

Interactions rest on evidence that means them: contact is a wrist on the other's body (torso, arms,
head) with both people at one depth, held for a minimum time; approaching and moving apart end or start
near each other; overlapping boxes alone state nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from haic.v1 import events_pb2
from services.captioner.kinematics.locomotion import WALK_SPEED
from services.captioner.kinematics.signals import (
    KP,
    VELOCITY_WINDOW_S,
    KinematicsRules,
    Series,
    body_centre,
    evidence,
    long_runs,
    quiet,
    track_series,
    velocity,
)
from services.core.contracts import InteractionKind

# Interactions (units: mean box height of the pair).
APPROACH_RATE = 0.15  # centre distance shrinking/growing faster than this per second
APPROACH_MIN = 0.3  # and by at least this much overall
MIN_INTERACT_S = 1.0  # approaching/apart/facing/following must hold this long
MERGE_INTERACT_S = 1.0  # runs of one interaction this close together are one
# Contact (units: torso lengths). Boxes of people standing one behind the other overlap without any
# touch (the bug of the former box test); only a wrist on the other's body (KinematicsRules.contact_torso),
# both people at one depth, held KinematicsRules.min_contact_s, is contact.
DEPTH_RATIO = 1.3  # torso lengths of two people at one depth differ by less than this factor
GROUND_TOL = 0.15  # and their feet (where both are seen) stand within this many body heights in image y
MERGED_TORSO = 0.25  # two skeletons whose keypoints lie this close (median) are one body seen twice
HEAD_RADIUS = 0.35  # the head: within this of the nose
# A quarter of a 20 px torso (the pedestrians of pedestrians_small_long.avi) is 5 px, within the keypoints'
# placement noise on such small crops: no contact is told for people whose torso is shorter than this,
# and no relation at all between two people whose median torso is: at that size a crowd's tracks break
# and swap (92 tracks for 3 to 8 pedestrians there) and a nose tells no facing.
MIN_CONTACT_TORSO_PX = 32.0
HUG_CENTRES = 1.0  # torso centres closer than this (torso lengths): bodies pressed together (the hug: 0.6)
FACE_OFFSET = 0.1  # nose offset from the shoulder centre (torso lengths) that shows a side-facing head
FOLLOW_DIST = 0.5  # the follower's feet come within this of where the leader's feet were
FOLLOW_MIN_S = 2.0  # following holds this long (walkers one behind the other on a street cross in less)
NEAR = 1.0  # people within this many body heights of each other are near (arm's length to a step away)
NEAR_HOLD_S = 2.0  # an approach ends, a moving apart starts, near each other for this long (passers-by
# crossing at walking speed stay within NEAR of each other for about 1.3 s)
FACE_NEAR = 1.5  # facing each other at most this far apart (a conversation's distance)
FOLLOW_LAG_S = (0.5, 4.0)  # range of delays searched for the leader's earlier position
FOLLOW_COS = 0.7  # both move in nearly the same direction
ALIGN_TOL_S = 0.15  # samples of two tracks closer than this in time are taken as simultaneous


def _align(a: Series, b: Series) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (ia, ib) of samples taken at the same time in both tracks."""
    if not len(a.t) or not len(b.t):
        return np.array([], dtype=int), np.array([], dtype=int)
    j = np.clip(np.searchsorted(b.t, a.t), 1, len(b.t) - 1) if len(b.t) > 1 else np.zeros(len(a.t), dtype=int)
    if len(b.t) > 1:
        j = np.where(np.abs(b.t[j - 1] - a.t) <= np.abs(b.t[j] - a.t), j - 1, j)
    ok = np.abs(b.t[j] - a.t) <= ALIGN_TOL_S
    return np.flatnonzero(ok), j[ok]


def _facing_x(s: Series) -> np.ndarray:
    """+1 when the head points to image right, -1 to the left, 0 frontal or unknown."""
    off = (s.joint("nose")[:, 0] - s.mid("left_shoulder", "right_shoulder")[:, 0]) / s.scale
    return np.where(off > FACE_OFFSET, 1, np.where(off < -FACE_OFFSET, -1, 0))


def _depth_matched(a: Series, b: Series, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Per aligned sample: both people stand at about one depth (torso lengths alike and, where both feet
    are seen, feet at about one image height), as two people in contact must."""
    ratio = a.torso[ia] / b.torso[ib]
    same = (ratio < DEPTH_RATIO) & (ratio > 1 / DEPTH_RATIO)
    feet_a = np.fmax(a.joint("left_ankle")[ia, 1], a.joint("right_ankle")[ia, 1])
    feet_b = np.fmax(b.joint("left_ankle")[ib, 1], b.joint("right_ankle")[ib, 1])
    apart = np.abs(feet_a - feet_b) / ((a.size[ia] + b.size[ib]) / 2)
    return same & ~(apart > GROUND_TOL)  # NaN (a foot unseen) leaves the torso test alone


def _merged(a: Series, b: Series, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Per aligned sample: the two skeletons coincide (the pose model found one body in both crops)."""
    d = np.linalg.norm(a.kp[ia] - b.kp[ib], axis=2) / ((a.torso[ia] + b.torso[ib]) / 2)[:, None]
    with quiet():
        return np.nanmedian(d, axis=1) < MERGED_TORSO


def _segment_distance(p: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Distance from points p to segments u-v (all (n, 2)); NaN where any end is unknown."""
    d = v - u
    length2 = np.sum(d**2, axis=1)
    k = np.clip(np.sum((p - u) * d, axis=1) / np.where(length2 > 0, length2, np.nan), 0.0, 1.0)
    k = np.where(length2 > 0, k, 0.0)
    return np.linalg.norm(p - (u + k[:, None] * d), axis=1)


def _inside_quad(p: np.ndarray, quad: list[np.ndarray]) -> np.ndarray:
    """Whether points p lie inside the convex quadrilateral with corners quad (in order)."""
    signs = []
    for u, v in itertools.pairwise([*quad, quad[0]]):
        signs.append(np.sign((v[:, 0] - u[:, 0]) * (p[:, 1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (p[:, 0] - u[:, 0])))
    signs_arr = np.stack(signs)
    return np.all(signs_arr >= 0, axis=0) | np.all(signs_arr <= 0, axis=0)


def _body_distance(w: np.ndarray, q: Series, iq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points w to q's body (torso quadrilateral, arms, head; in q's torso lengths), and
    whether the nearest part is the torso."""
    j = {name: q.joint(name)[iq] for name in KP}
    quad = [j["left_shoulder"], j["right_shoulder"], j["right_hip"], j["left_hip"]]
    torso = np.fmin.reduce([_segment_distance(w, u, v) for u, v in itertools.pairwise([*quad, quad[0]])])
    torso = np.where(_inside_quad(w, quad), 0.0, torso)
    limbs = [
        _segment_distance(w, j[f"{side}_{a}"], j[f"{side}_{b}"])
        for side in ("left", "right")
        for a, b in (("shoulder", "elbow"), ("elbow", "wrist"))
    ]
    head = np.maximum(np.linalg.norm(w - j["nose"], axis=1) - HEAD_RADIUS * q.torso[iq], 0.0)
    other = np.fmin.reduce([*limbs, head])
    unknown = np.isnan(w).any(axis=1)
    torso, other = np.where(unknown, np.nan, torso), np.where(unknown, np.nan, other)
    scale = q.torso[iq]
    return np.fmin(torso, other) / scale, ~(other < torso)


def _torso_centre(s: Series) -> np.ndarray:
    return (s.mid("left_shoulder", "right_shoulder") + s.mid("left_hip", "right_hip")) / 2


@dataclass(frozen=True)
class _Contact:
    """Per aligned sample, p's hands on q's body."""

    reaching: np.ndarray  # a wrist within the contact distance, reaching towards q (not resting by p's side)
    near: np.ndarray  # a wrist within the contact distance, wherever it comes from
    on_torso: np.ndarray  # a wrist within the contact distance of q's torso
    closest: np.ndarray  # the nearest wrist's distance (q's torso lengths)


def _contact(p: Series, q: Series, ip: np.ndarray, iq: np.ndarray, contact_torso: float) -> _Contact:
    own_centre, other_centre = _torso_centre(p)[ip], _torso_centre(q)[iq]
    reaching, near, on_torso, nearest = [], [], [], []
    for side in ("left", "right"):
        w = p.joint(f"{side}_wrist")[ip]
        d, torso = _body_distance(w, q, iq)
        # A hand hanging by one's side inside the other's outline is no touch: a touch reaches out to them.
        reach = np.linalg.norm(w - other_centre, axis=1) < np.linalg.norm(w - own_centre, axis=1)
        near.append(d <= contact_torso)
        reaching.append(near[-1] & reach)
        on_torso.append(near[-1] & torso)
        nearest.append(d)
    with quiet():
        closest = np.nanmin(np.stack(nearest), axis=0)
    return _Contact(reaching[0] | reaching[1], near[0] | near[1], on_torso[0] | on_torso[1], closest)


def _stays_near(t: np.ndarray, dist: np.ndarray, at: int, sign: float) -> bool:
    """Near (within NEAR) from sample `at` on for NEAR_HOLD_S, or up to the clip's end (sign < 0); or for
    NEAR_HOLD_S up to it, or from the clip's start (sign > 0)."""
    window = (t >= t[at]) & (t <= t[at] + NEAR_HOLD_S) if sign < 0 else (t <= t[at]) & (t >= t[at] - NEAR_HOLD_S)
    return bool(np.all(dist[window] <= NEAR))


def _pair_interactions(
    a: Series, b: Series, la: str, lb: str, contact_torso: float, min_contact_s: float
) -> list[events_pb2.Interaction]:
    ia, ib = _align(a, b)
    if len(ia) < 2 or min(a.scale, b.scale) < MIN_CONTACT_TORSO_PX:
        return []
    t = a.t[ia]
    ca, cb = body_centre(a)[ia], body_centre(b)[ib]
    scale = (a.height + b.height) / 2
    dist = np.linalg.norm(ca - cb, axis=1) / scale
    rate = velocity(t, dist, VELOCITY_WINDOW_S)
    same_depth = _depth_matched(a, b, ia, ib)
    merged = _merged(a, b, ia, ib)
    # Contact needs keypoints placed finer than the contact distance: not on small, distant people.
    large = (a.torso[ia] >= MIN_CONTACT_TORSO_PX) & (b.torso[ib] >= MIN_CONTACT_TORSO_PX)
    out: list[events_pb2.Interaction] = []

    def add(kind: str, x: int, y: int, subj: str, obj: str, **sig: float) -> None:
        out.append(
            events_pb2.Interaction(
                start_s=float(t[x]),
                end_s=float(t[y]),
                kind=kind,
                subject_label=subj,
                object_label=obj,
                evidence=evidence(t, x, y, **sig),
            )
        )

    for kind, sign in ((InteractionKind.APPROACHING, -1.0), (InteractionKind.MOVING_APART, 1.0)):
        for x, y in long_runs(t, sign * rate > APPROACH_RATE, MIN_INTERACT_S):
            change = float(dist[y] - dist[x])
            # People at different depths close in on each other only in the picture. Approaching someone
            # ends near them, and moving apart starts near them, for NEAR_HOLD_S: passers-by who cross
            # come close only for a moment (the pedestrians of pedestrians_small_long.avi).
            near_end = y if sign < 0 else x
            if sign * change < APPROACH_MIN or not same_depth[near_end] or not _stays_near(t, dist, near_end, sign):
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

    ab, ba = _contact(a, b, ia, ib, contact_torso), _contact(b, a, ib, ia, contact_torso)
    # Arms around each other: both people's hands on the other, one on a torso at some point, the torsos
    # close, at one depth. In an embrace the pose model often finds the same arms in both crops (the skeletons
    # merge), so merged samples count here once a reaching hand has started the contact.
    centres = np.linalg.norm(_torso_centre(a)[ia] - _torso_centre(b)[ib], axis=1) / ((a.torso[ia] + b.torso[ib]) / 2)
    embrace = ab.near & ba.near & (centres < HUG_CENTRES) & same_depth & large
    hugging = np.zeros(len(t), dtype=bool)
    for x, y in long_runs(t, embrace, min_contact_s):
        started = np.flatnonzero((ab.reaching | ba.reaching) & ~merged)
        started = started[started <= y]
        if not len(started):
            continue
        # Bodies close with hands near each other begin an embrace only once a hand reaches out.
        x = max(x, int(started[0]))
        if t[y] - t[x] < min_contact_s or not (ab.on_torso | ba.on_torso)[x : y + 1].any():
            continue
        hugging[x : y + 1] = True
        # The one whose hand reached the other first hugs the other ("A hugs B").
        first = int(started[0])
        subj, obj = (la, lb) if ab.reaching[first] else (lb, la)
        add(
            InteractionKind.HUGGING,
            x,
            y,
            subj,
            obj,
            contact_samples=float(y - x + 1),
            torso_centre_distance_torso=float(np.nanmin(centres[x : y + 1])),
            merged_samples=float(merged[x : y + 1].sum()),
        )
    for c, lp, lq in ((ab, la, lb), (ba, lb, la)):
        touch = c.reaching & same_depth & large & ~merged & ~hugging
        for x, y in long_runs(t, touch, min_contact_s):
            add(
                InteractionKind.TOUCHING,
                x,
                y,
                lp,
                lq,
                contact_samples=float(y - x + 1),
                min_wrist_distance_torso=float(np.nanmin(c.closest[x : y + 1])),
                on_torso_samples=float(c.on_torso[x : y + 1].sum()),
            )

    fa, fb = _facing_x(a)[ia], _facing_x(b)[ib]
    towards_b = np.sign(cb[:, 0] - ca[:, 0])
    facing = (fa != 0) & (fa == towards_b) & (fb == -towards_b) & same_depth
    for x, y in long_runs(t, facing & (dist <= FACE_NEAR), MIN_INTERACT_S):
        add(
            InteractionKind.FACING_EACH_OTHER,
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
    p: Series, q: Series, ip: np.ndarray, t: np.ndarray, scale: float, lp: str, lq: str
) -> list[events_pb2.Interaction]:
    """p follows q: p's feet pass where q's feet were a moment ago, both heading the same way."""
    feet_p = np.stack([(p.box[:, 0] + p.box[:, 2]) / 2, p.box[:, 3]], axis=1)[ip]
    feet_q_all = np.stack([(q.box[:, 0] + q.box[:, 2]) / 2, q.box[:, 3]], axis=1)
    okq = ~np.isnan(feet_q_all).any(axis=1)
    if okq.sum() < 2:
        return []
    tq, fq = q.t[okq], feet_q_all[okq]
    vp = np.stack([velocity(t, feet_p[:, c], VELOCITY_WINDOW_S) for c in range(2)], axis=1) / scale
    vq_all = np.stack([velocity(tq, fq[:, c], VELOCITY_WINDOW_S) for c in range(2)], axis=1) / scale
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
            kind=InteractionKind.FOLLOWING,
            subject_label=lp,
            object_label=lq,
            evidence=evidence(t, x, y, median_lag_s=float(np.nanmedian(best_lag[x : y + 1])), samples=float(y - x + 1)),
        )
        for x, y in long_runs(t, follow, FOLLOW_MIN_S)
    ]


def detect_interactions(
    tracks: list[events_pb2.PersonTrack],
    labels: dict[int, str],
    width: int,
    height: int,
    rules: KinematicsRules,
) -> list[events_pb2.Interaction]:
    """Pairwise interactions between tracked people, in time order; labels map track_id to a subject label.

    Contact ("touching", "hugging" when both hold each other) needs a wrist within rules.contact_torso torso
    lengths of the other's body, both people at one depth, for rules.min_contact_s.
    """
    series = [track_series(tr, width, height, rules) for tr in tracks]
    out: list[events_pb2.Interaction] = []
    with np.errstate(invalid="ignore", divide="ignore"), quiet():
        for i in range(len(series)):
            for j in range(i + 1, len(series)):
                a, b = series[i], series[j]
                la = labels.get(a.track_id, f"person {a.track_id}")
                lb = labels.get(b.track_id, f"person {b.track_id}")
                out.extend(_pair_interactions(a, b, la, lb, rules.contact_torso, rules.min_contact_s))
    return _merged_interactions(sorted(out, key=lambda x: (x.start_s, x.end_s, x.kind)))


def _merged_interactions(interactions: list[events_pb2.Interaction]) -> list[events_pb2.Interaction]:
    """One statement per pair and kind where its runs follow each other within MERGE_INTERACT_S (a face
    turned away for a sample does not make two "face each other")."""
    out: list[events_pb2.Interaction] = []
    for x in interactions:
        same = [
            y
            for y in out
            if (y.kind, y.subject_label, y.object_label) == (x.kind, x.subject_label, x.object_label)
            and x.start_s - y.end_s <= MERGE_INTERACT_S
        ]
        if same:
            y = same[-1]
            y.end_s = max(y.end_s, x.end_s)
            y.evidence.end_s = y.end_s
            continue
        out.append(x)
    return out
