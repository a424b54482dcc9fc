"""The legs' own movements: jumps, kicks, knee lifts (marching, dancing) and standing on one leg."""

from __future__ import annotations

import numpy as np

from haic.v1 import events_pb2
from services.captioner.kinematics.locomotion import stepping_mask, travel_mask
from services.captioner.kinematics.phrasing import count_phrase, make_action
from services.captioner.kinematics.posture import KNEE_LIFT_DROP, STAND_THIGH_DROP, thigh_drops
from services.captioner.kinematics.signals import Series, hysteresis, long_runs, true_runs

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
SHIN_HANGS = 0.5  # a lifted knee's ankle hangs at least this far below it (a shin is ~1 torso long)
KNEE_LIFT_MIN = 3  # knee lifts are told when repeated (marching, dancing); one comes with any high kick
BALANCE_LIFT = 0.5  # one ankle this far above the other, held, is standing on one leg
BALANCE_MIN_S = 1.0


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


def jump_and_kick_actions(s: Series) -> list[events_pb2.Action]:
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
            make_action(
                s,
                a,
                b,
                count_phrase("jumps", len(jumps)),
                "whole body",
                len(jumps),
                max_rise_torso=float(np.nanmax(both)),
                max_rise_px=float(np.nanmax(both)) * s.scale,
                peaks=len(jumps),
            )
        )
    moving, stepping = travel_mask(s), stepping_mask(s)
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
                make_action(
                    s,
                    a,
                    b,
                    count_phrase(f"kicks with their {side} leg", len(kicks)),
                    f"{side} leg",
                    len(kicks),
                    ankle_lift_torso=float(np.nanmax(lift[at])),
                    min_peak_lift_torso=min(float(np.nanmax(lift[r])) for r in runs),
                    ankle_above_knee_torso=float(np.nanmax(above_knee[at])),
                    # Into each kick's samples from the sample before (0 where that one is unknown).
                    ankle_up_speed_torso_per_s=float(np.nanmax(np.append(up_speed[at], 0.0))),
                    peaks=len(kicks),
                )
            )
    return out


def knee_lift_actions(s: Series, moving: np.ndarray) -> list[events_pb2.Action]:
    """A knee brought up to the hip while the other leg stands straight (marching, dancing), counted. The
    shin hangs below the lifted knee; a kick swings the foot up to the knee's height instead."""
    left, right = thigh_drops(s)
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
        phrase = f"lifts {what}" if part == "legs" else count_phrase(f"lifts {what}", len(runs))
        out.append(
            make_action(
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


def balance_actions(s: Series, moving: np.ndarray) -> list[events_pb2.Action]:
    """Standing on one leg: the other ankle held well above it for BALANCE_MIN_S, the body in place."""
    la, ra = s.joint("left_ankle")[:, 1], s.joint("right_ankle")[:, 1]
    out = []
    for side, standing, lifted in (("left", la, ra), ("right", ra, la)):
        lift = (standing - lifted) / s.scale
        for a, b in long_runs(s.t, (lift > BALANCE_LIFT) & ~moving, BALANCE_MIN_S):
            out.append(
                make_action(
                    s,
                    a,
                    b,
                    f"balances on their {side} leg",
                    f"{side} leg",
                    other_ankle_lift_torso=float(np.nanmin(lift[a : b + 1])),
                )
            )
    return out
