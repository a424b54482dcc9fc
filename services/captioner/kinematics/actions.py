"""One person's actions from their dense track.

Named actions come first (arms, hands, legs, posture changes, travel and stepping cadence, turns,
gestures, dancing, a step forward); where none fits, the body parts that move and how. A person who
does not move their whole body is also told by their held posture ("stands still", "sits"; "stays
still" where the legs are unseen), body_part POSTURE, a state that the judge does not count as movement.
detect_actions runs the detectors of upper_body.py, locomotion.py, legs.py and posture.py, then
movement.py's where nothing named fits, and adds the held state.
"""

from __future__ import annotations

import numpy as np

from haic.v1 import events_pb2
from services.captioner.kinematics.legs import balance_actions, jump_and_kick_actions, knee_lift_actions
from services.captioner.kinematics.locomotion import (
    MIN_MOVE_S,
    gait_actions,
    locomotion_actions,
    step_forward_actions,
    travel_mask,
    turn_actions,
)
from services.captioner.kinematics.movement import dance_action, movement_actions
from services.captioner.kinematics.phrasing import make_action, overlaps
from services.captioner.kinematics.posture import (
    MIN_POSTURE_SAMPLES,
    POSTURE,
    POSTURE_KNOWN_SHARE,
    POSTURE_STATE_SHARE,
    WHOLE_BODY_PARTS,
    posture_actions,
    posture_labels,
)
from services.captioner.kinematics.signals import KinematicsRules, Series, quiet, track_series
from services.captioner.kinematics.upper_body import (
    arm_actions,
    clap_actions,
    clasp_actions,
    gesture_actions,
    head_turn_actions,
    reach_actions,
)


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
    labels, tilt, thigh = posture_labels(s)
    labels = labels[first:]
    known = [x for x in labels if x]
    if len(known) >= max(MIN_POSTURE_SAMPLES, POSTURE_KNOWN_SHARE * len(labels)):
        for label, phrase in (("stand", "stands"), ("low", "sits")):
            share = known.count(label) / len(known)
            if share >= POSTURE_STATE_SHARE:
                return make_action(
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
    return make_action(s, first, len(s.t) - 1, "stays still", POSTURE, posture_known_share=len(known) / len(labels))


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
        moving = travel_mask(s)
        claps = clap_actions(s)
        # Clapping hands also swing sideways above the elbows; while clapping, that is not a wave.
        arms = [
            a
            for a in arm_actions(s)
            if not (a.verb_phrase.startswith("waves") and any(overlaps(c, a.start_s, a.end_s) for c in claps))
        ]
        travel = locomotion_actions(s)
        turns = turn_actions(s)
        jumps_and_kicks = jump_and_kick_actions(s)
        told = (
            arms
            + claps
            + travel
            + gait_actions(s, travel, moving)
            + jumps_and_kicks
            + knee_lift_actions(s, moving)
            + balance_actions(s, moving)
            + posture_actions(s)
            + reach_actions(s)
            + clasp_actions(s, claps)
            + turns
        )
        told += gesture_actions(s, told, moving) + head_turn_actions(s, turns)
        told += dance_action(s, told, moving)
        told += step_forward_actions(s, told)
        if not told:
            told = movement_actions(s, force=ensure_action)
        state = _held_state(s, told)
        if state is not None:
            told.append(state)
    return sorted(told, key=lambda a: (a.start_s, a.end_s, a.verb_phrase))
