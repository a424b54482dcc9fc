"""Records the pose stage's accepted verdicts for the captioner's tests (so they need no Triton):
the bundled juggling sample, and the two-person composite built from it (tests/captioner/two_people.py).

    .venv/bin/python -m tests.captioner.record_fixture             # both
    .venv/bin/python -m tests.captioner.record_fixture two_people  # one of: juggle, two_people

It runs the real pose stage (`ClipAnalyzer`) on the built models in-process with onnxruntime (the tests
of tests/pose check that Triton returns the same outputs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from haic.v1 import events_pb2
from services.core.settings import Settings
from services.core.storage import LocalStorage
from services.core.video import probe
from services.filter.service import split_video
from services.pose.estimator import PoseEstimator
from services.pose.models.build import build_model_repository
from services.pose.onnx_backend import OnnxRuntimeInference
from services.pose.service import ClipAnalyzer
from tests.captioner.two_people import two_people_clip

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "samples" / "juggle_one_person.mp4"
FIXTURE = Path(__file__).parent / "data" / "juggle_accepted.binpb"
TWO_PEOPLE_FIXTURE = Path(__file__).parent / "data" / "two_people_accepted.binpb"

# name: (video, video id, description, fixture)
CLIPS: dict[str, tuple[Callable[[], Path], str, str, Path]] = {
    "juggle": (lambda: SAMPLE, "vid_juggle", "A man juggles", FIXTURE),
    "two_people": (two_people_clip, "vid_two_people", "Two men juggle footballs", TWO_PEOPLE_FIXTURE),
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


def main(names: list[str]) -> None:
    for name in names or list(CLIPS):
        video, video_id, description, fixture = CLIPS[name]
        record(video(), video_id, description, fixture)


if __name__ == "__main__":
    main(sys.argv[1:])
