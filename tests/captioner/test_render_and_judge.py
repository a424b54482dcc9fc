"""Rendering in HAIC's format, and the judge's rules, each with a passing and a failing caption."""

from __future__ import annotations

import numpy as np
import pytest

from haic.v1 import events_pb2
from services.captioner.judge import acting_tracks, judge_caption
from services.captioner.kinematics.posture import POSTURE
from services.core.caption_text import describe_person, render_actions, render_caption
from tests.captioner.record_fixture import FIXTURE

W, H = 1280, 720
STANDING = np.array(
    [
        [640, 200], [650, 190], [630, 190], [660, 195], [620, 195],
        [680, 260], [600, 260], [700, 330], [580, 330], [705, 400], [575, 400],
        [665, 420], [615, 420], [670, 520], [610, 520], [672, 620], [608, 620],
    ],
    dtype=np.float64,
)  # fmt: skip


def track(track_id: int, moving: bool, dx: float = 0.0, seconds: float = 4.0) -> events_pb2.PersonTrack:
    samples = []
    for i in range(int(seconds * 4)):
        points = STANDING + np.array([dx, 0.0])
        if moving and i % 2:
            points[10] = [540 + dx, 160]  # right wrist up
            points[8] = [560 + dx, 240]
        x1, y1 = points.min(axis=0) - 20
        x2, y2 = points.max(axis=0) + 20
        samples.append(
            events_pb2.PoseSample(
                t_s=i / 4,
                box=events_pb2.Box(x1=x1, y1=y1, x2=x2, y2=y2, score=0.9),
                keypoints=[events_pb2.Keypoint(x=x, y=y, score=0.9) for x, y in points],
            )
        )
    return events_pb2.PersonTrack(track_id=track_id, samples=samples)


def subject(track_id: int, label: str, color: str, actions: list[tuple[float, float, str, int]]) -> events_pb2.Subject:
    return events_pb2.Subject(
        track_id=track_id,
        label=label,
        attributes=events_pb2.SubjectAttributes(clothing=[events_pb2.Garment(item="top", color=color)]),
        actions=[
            events_pb2.Action(start_s=s, end_s=e, verb_phrase=v, body_part="right arm", repetitions=r)
            for s, e, v, r in actions
        ],
    )


def caption(subjects: list[events_pb2.Subject], text: str | None = None) -> events_pb2.Caption:
    span = events_pb2.ClipSpan(clip_id="clip", start_s=0.0, end_s=4.0)
    return events_pb2.Caption(
        video_id="vid",
        span=span,
        subjects=subjects,
        text=render_caption(subjects, []) if text is None else text,
        backend="pose-grounded",
    )


def judge(c: events_pb2.Caption, tracks: list[events_pb2.PersonTrack], **kwargs: object) -> events_pb2.Judgement:
    # The settings' defaults (HAIC_JUDGE_*, HAIC_MIN_KEYPOINT_SCORE), unless a test says otherwise.
    rules: dict[str, object] = {
        "still_l1": 0.085,
        "min_keypoint_score": 0.2,
        "count_tolerance": 1,
        "split_max_gap_s": 3.0,
    }
    return judge_caption(c, tracks, W, H, **(rules | kwargs))


WAVER = subject(
    0,
    "the person in the red top",
    "red",
    [(0.0, 2.0, "raises their right arm twice", 2), (2.5, 3.5, "waves their right hand", 0)],
)
STILL = subject(1, "the person in the blue top", "blue", [])


def test_render_follows_haics_format() -> None:
    text = render_caption([WAVER, STILL], [])
    assert text.startswith("The main characters are two people.\n\n")
    assert (
        "The first subject is a person wearing a red top. Initially, they raise their right arm twice, finally wave"
        in text
    )
    assert "The second subject is a person wearing a blue top. They stay still." in text


def test_a_single_action_is_told_as_the_clips_activity_or_as_an_event() -> None:
    brief = subject(0, "a", "red", [(8.5, 9.0, "kicks with their right leg", 1)])
    assert "At one point, they kick with their right leg." in render_caption([brief], [], clip_s=10.0)
    lasting = subject(0, "a", "red", [(0.5, 9.5, "walks to the left", 0)])
    assert "Throughout the clip, they walk to the left." in render_caption([lasting], [], clip_s=10.0)


def test_a_faithful_caption_passes() -> None:
    verdict = judge(caption([WAVER, STILL]), [track(0, True), track(1, False, dx=300)])
    assert verdict.passed, list(verdict.reasons)
    assert verdict.judge == "rules" and verdict.scores["tracks"] == 2


@pytest.mark.parametrize(
    ("broken", "tracks", "reason"),
    [
        (caption([]), [track(0, True)], "no_subjects"),
        (
            caption([WAVER, subject(1, "the person in the red top", "red", [])]),
            [track(0, True), track(1, False, 300)],
            "duplicate_labels",
        ),
        (caption([subject(0, "", "red", [])]), [track(0, True)], "empty_label"),
        (
            caption([subject(0, "a", "red", [(2.0, 3.0, "claps", 0), (0.0, 1.0, "jumps", 0)])]),
            [track(0, True)],
            "actions_out_of_order",
        ),
        (caption([subject(0, "a", "red", [(3.0, 9.0, "claps", 0)])]), [track(0, True)], "action_outside_clip"),
        (caption([subject(0, "a", "red", [(0.0, 1.0, " ", 0)])]), [track(0, True)], "empty_action"),
        (caption([WAVER], text="A person waves."), [track(0, True)], "text_missing_subject"),
        (
            caption([WAVER], text="The main character is one person.\n\nThe first subject is a person. They wave."),
            [track(0, True)],
            "text_missing_time_markers",
        ),
        (caption([WAVER]), [track(0, True), track(1, False, 300)], "subject_count_mismatch"),
        (caption([subject(7, "a", "red", [])]), [track(0, True)], "unknown_track"),
        (caption([subject(1, "a", "blue", [(0.0, 1.0, "claps", 0)])]), [track(1, False)], "action_for_still_person"),
    ],
)
def test_each_rule_fails_a_caption_that_breaks_it(
    broken: events_pb2.Caption, tracks: list[events_pb2.PersonTrack], reason: str
) -> None:
    verdict = judge(broken, tracks)
    assert not verdict.passed
    assert reason in verdict.reasons, list(verdict.reasons)


def test_counts_are_checked_against_the_pose_grounded_count_within_a_tolerance() -> None:
    reference = {0: [events_pb2.Action(start_s=0.0, end_s=2.0, body_part="right arm", repetitions=5)]}
    off_by_three = judge(caption([WAVER]), [track(0, True)], reference_actions=reference)
    assert not off_by_three.passed and "count_mismatch" in off_by_three.reasons
    close = {0: [events_pb2.Action(start_s=0.0, end_s=2.0, body_part="right arm", repetitions=3)]}
    assert judge(caption([WAVER]), [track(0, True)], reference_actions=close).passed


def test_garment_articles_and_irregular_verbs_read_as_english() -> None:
    dressed = events_pb2.SubjectAttributes(
        clothing=[events_pb2.Garment(item="dress", color="green"), events_pb2.Garment(item="shorts", color="red")]
    )
    assert describe_person(dressed) == "a person wearing a green dress and red shorts"
    subject = events_pb2.Subject(
        actions=[
            events_pb2.Action(start_s=0, end_s=1, verb_phrase="lies down"),
            events_pb2.Action(start_s=2, end_s=3, verb_phrase="carries the ball"),
            events_pb2.Action(start_s=4, end_s=5, verb_phrase="goes away"),
        ]
    )
    assert render_actions(subject) == "Initially, they lie down, then carry the ball, finally go away."


# --- the evidence rules (issue 11) ---

ACCEPTED = {"people_min": 2.0, "people_max": 2.0, "tracks_acting": 1.0}


def shifted(t: events_pb2.PersonTrack, start: float, stop: float, dx: float = 0.0) -> events_pb2.PersonTrack:
    """The samples of t from start to stop seconds, moved dx pixels to the right."""
    samples = [s for s in t.samples if start <= s.t_s <= stop]
    for s in samples:
        s.box.x1 += dx
        s.box.x2 += dx
        for k in s.keypoints:
            k.x += dx
    return events_pb2.PersonTrack(track_id=t.track_id, samples=samples)


def test_a_faithful_caption_passes_every_evidence_rule() -> None:
    reference = {0: WAVER.attributes, 1: STILL.attributes}
    verdict = judge(
        caption([WAVER, STILL]),
        [track(0, True), track(1, False, dx=300)],
        clip_values=ACCEPTED,
        reference_attributes=reference,
    )
    assert verdict.passed, list(verdict.reasons)
    assert verdict.scores["people_max"] == 2.0


def test_one_person_split_in_two_subjects_is_caught() -> None:
    # The same person tracked 0-1.75 s, lost, found again at 2.25 s a few pixels on: two subjects.
    first, second = shifted(track(0, True), 0.0, 1.75), shifted(track(1, True), 2.25, 4.0, dx=15)
    split = caption([WAVER, subject(1, "the person in the red top on the right", "red", [])])
    verdict = judge(split, [first, second])
    assert "split_subject" in verdict.reasons and verdict.scores["split_gap_s"] == 0.5
    # Far apart, or seen together, or dressed differently, they are two people.
    far = shifted(track(1, True), 2.25, 4.0, dx=900)  # two body heights away after half a second
    assert "split_subject" not in judge(split, [first, far]).reasons
    assert "split_subject" not in judge(split, [track(0, True), track(1, True, dx=15)]).reasons
    assert "split_subject" not in judge(caption([WAVER, STILL]), [first, second]).reasons
    # A gap longer than the configured one is another person coming in.
    assert "split_subject" not in judge(split, [first, second], split_max_gap_s=0.25).reasons


def test_subject_counts_are_checked_against_the_people_the_existence_rule_counted() -> None:
    one_person = {"people_min": 1.0, "people_max": 1.0, "tracks_acting": 1.0}
    verdict = judge(caption([WAVER, STILL]), [track(0, True), track(1, False, dx=300)], clip_values=one_person)
    assert "subject_count_vs_existence" in verdict.reasons
    three = {"people_min": 3.0, "people_max": 3.0, "tracks_acting": 1.0}
    assert "subject_count_vs_existence" in judge(caption([WAVER]), [track(0, True)], clip_values=three).reasons
    assert "subject_count_vs_existence" not in judge(caption([WAVER]), [track(0, True)], clip_values=one_person).reasons


def test_attributes_stated_without_evidence_are_caught() -> None:
    # The text calls the first subject a woman; nothing gave a gender.
    text = render_caption([WAVER, STILL], []).replace("The first subject is a person", "The first subject is a woman")
    verdict = judge(caption([WAVER, STILL], text=text), [track(0, True), track(1, False, dx=300)])
    assert "attribute_without_evidence" in verdict.reasons
    # A colour the subject's garments do not have.
    text = render_caption([WAVER, STILL], []).replace("wearing a red top", "wearing a green top")
    verdict = judge(caption([WAVER, STILL], text=text), [track(0, True), track(1, False, dx=300)])
    assert "attribute_without_evidence" in verdict.reasons
    # A gender in the structured caption that the pose-grounded evidence (the face) does not give.
    woman = events_pb2.Subject()
    woman.CopyFrom(WAVER)
    woman.attributes.gender = "female"
    stated = caption([woman, STILL])
    tracks = [track(0, True), track(1, False, dx=300)]
    unknown = {0: WAVER.attributes, 1: STILL.attributes}
    assert "attribute_without_evidence" in judge(stated, tracks, reference_attributes=unknown).reasons
    grounded = {0: woman.attributes, 1: STILL.attributes}
    # The pose-grounded attributes hold it, but the track's face evidence does not: still unsupported.
    assert "attribute_without_evidence" in judge(stated, tracks, reference_attributes=grounded).reasons
    tracks[0].attributes.gender = "female"  # what the face models read
    assert judge(stated, tracks, reference_attributes=grounded).passed
    assert judge(stated, tracks).passed
    tracks[0].attributes.gender = "male"
    assert "attribute_without_evidence" in judge(stated, tracks).reasons
    assert "she raises her right arm" in stated.text.lower()


def test_a_caption_with_no_movement_for_a_clip_the_action_rule_accepted_is_caught() -> None:
    still = subject(0, "a", "red", [])
    still.actions.add(start_s=0.0, end_s=4.0, verb_phrase="stands", body_part=POSTURE)
    acting = {"people_min": 1.0, "people_max": 1.0, "tracks_acting": 1.0}
    verdict = judge(caption([still]), [track(0, True)], clip_values=acting)
    assert "no_action_for_acting_clip" in verdict.reasons
    assert judge(caption([WAVER]), [track(0, True)], clip_values=acting).passed
    # A held posture is no movement, so it never needs one: a still person may stand.
    assert judge(caption([still]), [track(0, False)]).passed


def test_acting_tracks_are_the_ones_the_action_rule_accepts() -> None:
    # The juggler (a real track) acts by the pose stage's own rule; a standing skeleton does not.
    juggler = events_pb2.ClipVerdict.FromString(FIXTURE.read_bytes())
    [moving] = juggler.dense_tracks
    still = track(7, False)
    rule = {"min_keypoint_l1": 0.085, "min_affine_residual": 0.0016, "min_keypoint_score": 0.2}
    w, h = juggler.info.width, juggler.info.height
    assert acting_tracks([moving, still], w, h, **rule) == {moving.track_id}
    assert acting_tracks([moving], w, h, **{**rule, "min_keypoint_l1": 10.0}) == set()
