"""Records the pose stage's accepted verdicts for the captioner's tests (so they need no Triton):
the bundled juggling sample, the two-person composite built from it (tests/captioner/two_people.py),
and whole shots of labelled real videos (../shared/videos/corpus, see SHOTS).

    .venv/bin/python -m tests.captioner.record_fixture             # all
    .venv/bin/python -m tests.captioner.record_fixture two_people  # some of: juggle, two_people, and SHOTS' names

It runs the real pose stage (`ClipAnalyzer`) on the built models in-process with onnxruntime (the tests
of tests/pose check that Triton returns the same outputs). A labelled shot is analysed whole, as one
candidate, with the existence and action rules opened (no people count, coverage or motion limit), so
that shots the duration rule rejects (a 2.6 s hug) still give their dense tracks: the evidence the
captioner's kinematics is measured on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from haic.v1 import events_pb2
from haic_tools.models.build import build_model_repository
from services.core.settings import Settings
from services.core.storage import LocalStorage
from services.core.video import probe
from services.filter.service import split_video
from services.pose.estimator import PoseEstimator
from services.pose.onnx_backend import OnnxRuntimeInference
from services.pose.service import ClipAnalyzer
from tests.captioner.two_people import two_people_clip

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "samples" / "juggle_one_person.mp4"
FIXTURE = Path(__file__).parent / "data" / "juggle_accepted.binpb"
TWO_PEOPLE_FIXTURE = Path(__file__).parent / "data" / "two_people_accepted.binpb"

CORPUS = REPO_ROOT.parent / "shared" / "videos" / "corpus"
DATA = Path(__file__).parent / "data"

# name: (video, video id, description, fixture)
CLIPS: dict[str, tuple[Callable[[], Path], str, str, Path]] = {
    "juggle": (lambda: SAMPLE, "vid_juggle", "A man juggles", FIXTURE),
    "two_people": (two_people_clip, "vid_two_people", "Two men juggle footballs", TWO_PEOPLE_FIXTURE),
}
# name: (video in the corpus, fixture): whole shots, rules opened (record_shot).
SHOTS: dict[str, tuple[str, Path]] = {
    "hug": ("hug_two_men_lab.mp4", DATA / "hug_two_men_shot.binpb"),
    "squats": ("woman_band_squats_5fps.mp4", DATA / "woman_squats_shot.binpb"),
    "dance": ("man_dances_kitchen_drawings.mp4", DATA / "man_dances_shot.binpb"),
    "corridor": ("two_people_walk_corridor.gif", DATA / "two_people_corridor_shot.binpb"),
    "sign": ("asl_sign_book.mkv", DATA / "woman_signs_shot.binpb"),
    "park": ("two_people_jump_walk_park_vp9.mp4", DATA / "park_jump_walk_shot.binpb"),
}


def record(video: Path, video_id: str, description: str, fixture: Path) -> events_pb2.ClipVerdict:
    settings = Settings(storage_url=str(video.parent))
    report = build_model_repository(settings)
    storage = LocalStorage(video.parent)
    uploaded = events_pb2.VideoUploaded(
        video_id=video_id, storage_uri=video.as_uri(), info=probe(video).to_proto(), description=description
    )
    [clip] = split_video(uploaded, settings, storage).candidates
    analyzer = ClipAnalyzer(
        settings, storage, PoseEstimator.from_settings(OnnxRuntimeInference(report.repository), settings)
    )
    verdict = analyzer.analyze(clip)
    assert verdict.verdict == events_pb2.VERDICT_ACCEPTED, verdict.reason
    fixture.write_bytes(verdict.SerializeToString(deterministic=True))
    counts = ", ".join(str(len(t.samples)) for t in verdict.dense_tracks)
    print(f"{fixture}: {len(verdict.dense_tracks)} dense track(s), samples {counts}")
    return verdict


def record_shot(video: Path, fixture: Path) -> events_pb2.ClipVerdict:
    """The pose stage's dense tracks of a whole shot, its existence and action rules opened."""
    opened = Settings(
        storage_url=str(video.parent),
        min_people=0,
        max_people=100,
        min_person_area_ratio=0.0,
        min_keypoint_l1=0.0,
        min_affine_residual=0.0,
    )
    report = build_model_repository(opened)
    info = probe(video)
    candidate = events_pb2.ClipCandidate(
        video_id=video.stem,
        storage_uri=video.as_uri(),
        info=info.to_proto(),
        span=events_pb2.ClipSpan(clip_id=f"{video.stem}:0", start_s=0.0, end_s=info.duration_s),
    )
    estimator = PoseEstimator.from_settings(OnnxRuntimeInference(report.repository, threads=1), opened)
    verdict = ClipAnalyzer(opened, LocalStorage(video.parent), estimator).analyze(candidate)
    assert verdict.verdict == events_pb2.VERDICT_ACCEPTED, verdict.reason
    verdict.storage_uri = video.name  # recorded in one checkout, read in another
    fixture.write_bytes(verdict.SerializeToString(deterministic=True))
    counts = ", ".join(str(len(t.samples)) for t in verdict.dense_tracks)
    print(f"{fixture}: {len(verdict.dense_tracks)} dense track(s), samples {counts}")
    return verdict


def main(names: list[str]) -> None:
    for name in names or [*CLIPS, *SHOTS]:
        if name in SHOTS:
            video, fixture = SHOTS[name]
            record_shot(CORPUS / video, fixture)
            continue
        video, video_id, description, fixture = CLIPS[name]
        record(video(), video_id, description, fixture)


if __name__ == "__main__":
    main(sys.argv[1:])
