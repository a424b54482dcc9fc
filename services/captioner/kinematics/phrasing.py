"""How a detected action is told: its Action message with the evidence, counted phrases ("claps three
times") and the overlap of an action with a time range, shared by the detectors.
"""

from __future__ import annotations

from haic.v1 import events_pb2
from services.captioner.kinematics.signals import Series, evidence

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


def count_phrase(base: str, n: int) -> str:
    if n <= 1:
        return base
    return f"{base} {_COUNT_WORDS.get(n, f'{n} times')}"


def make_action(
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


def overlaps(a: events_pb2.Action, start_s: float, end_s: float) -> bool:
    return a.start_s <= end_s and start_s <= a.end_s
