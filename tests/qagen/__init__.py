"""QA generation tests; the hand-written structured caption they share: two people, repeated actions, directions,
interactions, an object."""

from __future__ import annotations

from haic.v1 import events_pb2

RED = "the person in the red top and blue trousers"
GREEN = "the woman in the green dress"


def _action(
    start: float,
    end: float,
    phrase: str,
    part: str,
    *,
    reps: int = 0,
    direction: str = "",
    target: str = "",
) -> events_pb2.Action:
    return events_pb2.Action(
        start_s=start,
        end_s=end,
        verb_phrase=phrase,
        body_part=part,
        repetitions=reps,
        direction=direction,
        target=target,
        evidence=events_pb2.Evidence(start_s=start, end_s=end, signals={"peaks": float(reps)}),
    )


def two_people_caption() -> events_pb2.Caption:
    red = events_pb2.Subject(
        track_id=1,
        label=RED,
        attributes=events_pb2.SubjectAttributes(
            clothing=[events_pb2.Garment(item="top", color="red"), events_pb2.Garment(item="trousers", color="blue")]
        ),
        actions=[
            _action(0.0, 2.0, "raises their right arm three times", "right arm", reps=3),
            _action(2.5, 3.5, "kicks the ball with their left leg twice", "left leg", reps=2, target="ball"),
            _action(4.0, 7.0, "walks to the left", "whole body", direction="left"),
            _action(7.5, 8.5, "sits down", "whole body"),
            _action(8.8, 9.6, "raises their right arm", "right arm", reps=1),
        ],
    )
    green = events_pb2.Subject(
        track_id=2,
        label=GREEN,
        attributes=events_pb2.SubjectAttributes(
            gender="female", clothing=[events_pb2.Garment(item="dress", color="green")]
        ),
        actions=[
            _action(0.5, 1.5, "claps four times", "hands", reps=4),
            _action(2.0, 5.0, "runs towards the camera", "whole body", direction="towards the camera"),
            _action(5.5, 6.0, "turns around", "whole body"),
            _action(6.5, 7.5, "raises their left arm", "left arm", reps=1),
            _action(8.0, 9.0, "jumps twice", "whole body", reps=2),
        ],
    )
    return events_pb2.Caption(
        video_id="vid_test",
        span=events_pb2.ClipSpan(clip_id="clip_test", start_s=0.0, end_s=10.0),
        subjects=[red, green],
        interactions=[
            events_pb2.Interaction(start_s=2.0, end_s=5.0, kind="approaching", subject_label=GREEN, object_label=RED),
            events_pb2.Interaction(start_s=6.5, end_s=7.0, kind="touching", subject_label=GREEN, object_label=RED),
        ],
        text="(rendered text not needed by QA generation)",
        backend="pose-grounded",
    )
