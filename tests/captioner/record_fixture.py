"""Records the pose stage's accepted verdict for the bundled juggling sample into data/, for the
captioner's tests (so they need no Triton): `.venv/bin/python -m tests.captioner.record_fixture`.

It runs the real pose stage (`ClipAnalyzer`) on the built models in-process with onnxruntime (the tests
of tests/pose check that Triton returns the same outputs).
"""

from __future__ import annotations

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

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "samples" / "juggle_one_person.mp4"
FIXTURE = Path(__file__).parent / "data" / "juggle_accepted.binpb"


def main() -> None:
    settings = Settings(storage_url=str(SAMPLE.parent))
    report = build_model_repository(settings)
    storage = LocalStorage(SAMPLE.parent)
    uploaded = events_pb2.VideoUploaded(
        video_id="vid_juggle", storage_uri=SAMPLE.as_uri(), info=probe(SAMPLE).to_proto(), description="A man juggles"
    )
    [clip] = split_video(uploaded, settings, storage).candidates
    analyzer = ClipAnalyzer(
        settings, storage, PoseEstimator.from_settings(OnnxRuntimeInference(report.repository), settings)
    )
    verdict = analyzer.analyze(clip)
    assert verdict.verdict == events_pb2.VERDICT_ACCEPTED, verdict.reason
    FIXTURE.write_bytes(verdict.SerializeToString(deterministic=True))
    print(f"{FIXTURE}: {len(verdict.dense_tracks)} dense track(s), {len(verdict.dense_tracks[0].samples)} samples")


if __name__ == "__main__":
    main()
