"""Quality of the curation stages and of the people evidence on the labelled real videos.

    .venv/bin/python bench/curation_quality.py [--videos DIR] [--only SUBSTRING ...] [--json OUT] [--no-cache]

Runs the pipeline's own stages in-process (the filter's `split_video`, the pose stage's `ClipAnalyzer` on
the built models through onnxruntime, the captioner's `ClipCaptioner` with its judge) on every video of
labels.json in DIR (default ../shared/videos) and DIR/corpus, and prints against the labels:

- curation: verdict accuracy (accept / reject), rejection-stage accuracy (metadata, scene, existence,
  action: the stage of the rejection that got furthest), accepted-clip count;
- accepted clips: the number of captioned subjects against the labelled number of people, captions
  with no action at all (stated still), judge pass rate;
- evidence, on every labelled video with people, over the whole video as one span (so videos the
  duration or resolution rules reject are measured too), with the rules opened so the pose stage runs
  to its dense tracks: per-frame person count on the 16 existence frames (precision, recall, mean absolute
  error, on videos no longer than a clip, where the labelled people stay in view), identity
  fragmentation (dense tracks per real person), gender / age group accuracy when asserted and coverage
  (asserted vs known), top and bottom colour accuracy and coverage, recall of the labelled main actions,
  invented interactions (stated where the label has none) and recall of labelled ones.

Videos labelled ``borderline`` (a threshold decides) are reported apart. How stated facts are matched to
the free-text labels: bench/label_matching.py. Pose outputs are cached under <data_dir>/bench-cache,
keyed by the pose and filter code, the settings and the video's bytes; captions are always recomputed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "bench"))

from label_matching import (  # noqa: E402
    action_recalled,
    best_assignment,
    colour_matches,
)

from haic.v1 import events_pb2  # noqa: E402
from haic_tools.models.build import build_model_repository  # noqa: E402
from services.captioner.service import ClipCaptioner  # noqa: E402
from services.core.ids import clip_id as make_clip_id  # noqa: E402
from services.core.settings import Settings  # noqa: E402
from services.core.storage import LocalStorage  # noqa: E402
from services.core.video import VideoProbeError, probe  # noqa: E402
from services.filter.service import split_video  # noqa: E402
from services.pose.estimator import PoseEstimator  # noqa: E402
from services.pose.onnx_backend import OnnxRuntimeInference  # noqa: E402
from services.pose.service import ClipAnalyzer  # noqa: E402

STAGES = {
    "filter.metadata": "metadata",
    "filter.scene": "scene",
    "pose.human_existence": "existence",
    "pose.human_action": "action",
}
STAGE_ORDER = ["metadata", "scene", "existence", "action"]
TOP_ITEMS = {"top", "shirt", "t-shirt", "jacket", "dress", "sweater", "hoodie", "vest", "coat", "blouse", "bare torso"}
BOTTOM_ITEMS = {"trousers", "shorts", "bottoms", "skirt", "pants", "jeans", "leggings"}
CACHED_CODE = ("services/pose", "services/filter", "services/core", "gen/python/haic")


@dataclass
class VideoResult:
    name: str
    label: dict
    verdict: str = ""
    stage: str = ""
    accepted_clips: int = 0
    captions: list[events_pb2.Caption] = field(default_factory=list)
    evidence: events_pb2.ClipVerdict | None = None
    evidence_caption: events_pb2.Caption | None = None
    error: str = ""

    @property
    def borderline(self) -> bool:
        return bool(self.label.get("borderline"))

    @property
    def people(self) -> int | None:
        people = self.label.get("people")
        return people if isinstance(people, int) else None


def code_key(settings: Settings) -> str:
    digest = hashlib.sha256(settings.model_dump_json().encode())
    for folder in CACHED_CODE:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def file_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class Pipeline:
    """The stages, with the pose outputs cached per video."""

    def __init__(self, settings: Settings, cache_dir: Path | None) -> None:
        self.settings = settings
        # Evidence runs: the existence and action rules opened, so every video reaches its dense tracks.
        self.evidence_settings = settings.model_copy(
            update={
                "min_people": 0,
                "max_people": 1000,
                "min_person_area_ratio": 0.0,
                "min_keypoint_l1": 0.0,
                "min_affine_residual": 0.0,
            }
        )
        report = build_model_repository(settings)
        self.backend = OnnxRuntimeInference(report.repository)
        self.cache_dir = cache_dir
        self.key = code_key(settings)

    def _analyzer(self, settings: Settings, store: Path) -> ClipAnalyzer:
        return ClipAnalyzer(settings, LocalStorage(store), PoseEstimator.from_settings(self.backend, settings))

    def _cached(self, name: str, path: Path, compute) -> list[events_pb2.ClipVerdict]:
        target = None
        if self.cache_dir is not None:
            target = self.cache_dir / f"{path.stem}-{file_key(path)}-{self.key}-{name}.binpb"
            if target.exists():
                batch = events_pb2.ClipVerdict
                return [batch.FromString(b) for b in _split_records(target.read_bytes())]
        verdicts = compute()
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_join_records([v.SerializeToString(deterministic=True) for v in verdicts]))
        return verdicts

    def curate(self, path: Path, label: dict) -> tuple[list[events_pb2.ClipVerdict], list[events_pb2.ClipVerdict]]:
        """(accepted clips, rejections) the filter and the pose stage make of one video."""
        uploaded = self._uploaded(path, label)

        def compute() -> list[events_pb2.ClipVerdict]:
            split = split_video(uploaded, self.settings, LocalStorage(path.parent))
            analyzer = self._analyzer(self.settings, path.parent)
            return [*split.rejections, *(analyzer.analyze(c) for c in split.candidates)]

        verdicts = self._cached("curate", path, compute)
        accepted = [v for v in verdicts if v.verdict == events_pb2.VERDICT_ACCEPTED]
        return accepted, [v for v in verdicts if v.verdict != events_pb2.VERDICT_ACCEPTED]

    def evidence(self, path: Path, label: dict) -> events_pb2.ClipVerdict:
        """The pose stage over the whole video as one span, its rules opened."""
        uploaded = self._uploaded(path, label)

        def compute() -> list[events_pb2.ClipVerdict]:
            info = uploaded.info
            span = events_pb2.ClipSpan(
                clip_id=make_clip_id(uploaded.video_id, 0.0, info.duration_s),
                start_s=0.0,
                end_s=info.duration_s,
            )
            candidate = events_pb2.ClipCandidate(
                video_id=uploaded.video_id,
                span=span,
                storage_uri=uploaded.storage_uri,
                info=info,
                description=uploaded.description,
            )
            return [self._analyzer(self.evidence_settings, path.parent).analyze(candidate)]

        return self._cached("evidence", path, compute)[0]

    def caption(self, verdict: events_pb2.ClipVerdict, store: Path) -> events_pb2.Caption | None:
        if verdict.verdict != events_pb2.VERDICT_ACCEPTED or not (verdict.dense_tracks or verdict.tracks):
            return None
        return ClipCaptioner(self.settings, LocalStorage(store)).caption(verdict)

    @staticmethod
    def _uploaded(path: Path, label: dict) -> events_pb2.VideoUploaded:
        return events_pb2.VideoUploaded(
            video_id=f"vid_{path.stem}",
            storage_uri=path.as_uri(),
            info=probe(path).to_proto(),
            description=label.get("description", ""),
        )


def _join_records(records: Iterable[bytes]) -> bytes:
    return b"".join(len(r).to_bytes(8, "big") + r for r in records)


def _split_records(data: bytes) -> list[bytes]:
    records, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 8], "big")
        records.append(data[at + 8 : at + 8 + size])
        at += 8 + size
    return records


def run_video(pipeline: Pipeline, path: Path, label: dict) -> VideoResult:
    result = VideoResult(
        path.relative_to(path.parents[1]).as_posix() if path.parent.name == "corpus" else path.name, label
    )
    try:
        accepted, rejections = pipeline.curate(path, label)
    except (VideoProbeError, ValueError) as exc:
        # an unreadable video is a metadata rejection as far as curation goes (the gateway answers 4xx)
        result.verdict, result.stage, result.error = "reject", "metadata", str(exc)
        return result
    result.accepted_clips = len(accepted)
    if accepted:
        result.verdict = "accept"
    else:
        result.verdict = "reject"
        stages = [STAGES.get(r.stage, r.stage) for r in rejections]
        result.stage = max(stages, key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else -1, default="")
    result.captions = [c for c in (pipeline.caption(v, path.parent) for v in accepted) if c is not None]
    if label.get("people") != 0 or result.verdict == "accept":
        result.evidence = pipeline.evidence(path, label)
        result.evidence_caption = pipeline.caption(result.evidence, path.parent)
    elif label.get("people") == 0:
        result.evidence = pipeline.evidence(path, label)  # false people on empty footage count too
    return result


# --- scoring ---


@dataclass
class Tally:
    right: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.right += int(ok)
        self.total += 1

    def __str__(self) -> str:
        if not self.total:
            return "n/a"
        return f"{self.right}/{self.total} ({self.right / self.total:.0%})"

    def ratio(self) -> float | None:
        return self.right / self.total if self.total else None


def garments(subject: events_pb2.Subject) -> tuple[str | None, str | None]:
    top = bottom = None
    for garment in subject.attributes.clothing:
        item = garment.item.lower()
        colour = garment.color.lower()
        if "shirtless" in item or "bare" in item or "shirtless" in colour:
            top = top or "shirtless"
        elif item in BOTTOM_ITEMS or any(word in item for word in BOTTOM_ITEMS):
            bottom = bottom or colour
        elif colour:
            top = top or colour
    return top, bottom


def _gender(subject: events_pb2.Subject) -> str | None:
    gender = subject.attributes.gender.strip().lower()
    return gender if gender in {"male", "female"} else None


def _age(subject: events_pb2.Subject) -> str | None:
    age = subject.attributes.age_group.strip().lower()
    return age if age and age != "unknown" else None


def _known(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in {"", "unknown"} else value.strip().lower()


def match_subjects(labelled: list[dict], caption: events_pb2.Caption) -> list[tuple[int, events_pb2.Subject]]:
    """(index of the labelled subject, stated subject) pairs of the best matching."""
    # the longest tracks first when there are many (fragments), so the brute-force matching stays small
    stated = list(caption.subjects)[:10]

    def agreement(i: int, j: int) -> float:
        label, subject = labelled[i], stated[j]
        top, bottom = garments(subject)
        score = 0.0
        if _known(label.get("gender")) and _gender(subject) == _known(label.get("gender")):
            score += 1
        if top and _known(label.get("top")) and colour_matches(label["top"], top):
            score += 1
        if bottom and _known(label.get("bottom")) and colour_matches(label["bottom"], bottom):
            score += 1
        stated_actions = [a.verb_phrase for a in subject.actions]
        score += 0.5 * sum(action_recalled(a, stated_actions) for a in label.get("actions", []))
        return score + 1e-3  # any pairing beats none

    return [(i, stated[j]) for i, j in best_assignment(len(labelled), len(stated), agreement)]


@dataclass
class Summary:
    verdict: Tally = field(default_factory=Tally)
    stage: Tally = field(default_factory=Tally)
    accepted_people: Tally = field(default_factory=Tally)
    still_captions: Tally = field(default_factory=Tally)  # right = not still
    judge_passed: Tally = field(default_factory=Tally)
    frame_tp: int = 0
    frame_detected: int = 0
    frame_expected: int = 0
    frame_abs_error: list[int] = field(default_factory=list)
    false_people_on_empty: Tally = field(default_factory=Tally)  # right = frame with nobody detected
    fragmentation: list[float] = field(default_factory=list)
    one_track_per_person: Tally = field(default_factory=Tally)
    gender_asserted: Tally = field(default_factory=Tally)
    gender_coverage: Tally = field(default_factory=Tally)
    age_asserted: Tally = field(default_factory=Tally)
    age_coverage: Tally = field(default_factory=Tally)
    top_asserted: Tally = field(default_factory=Tally)
    top_coverage: Tally = field(default_factory=Tally)
    bottom_asserted: Tally = field(default_factory=Tally)
    bottom_coverage: Tally = field(default_factory=Tally)
    actions: Tally = field(default_factory=Tally)
    invented_interactions: int = 0
    interactions_recalled: Tally = field(default_factory=Tally)
    attribute_asserted_on_unknown: int = 0

    def add(self, r: VideoResult, max_clip_s: float) -> dict:
        row: dict = {"video": r.name, "verdict": r.verdict, "stage": r.stage, "borderline": r.borderline}
        expect = r.label.get("expect")
        self.verdict.add(r.verdict == expect)
        if expect == "reject":
            self.stage.add(r.verdict == "reject" and r.stage == r.label.get("reject_stage"))
        else:
            self.stage.add(r.verdict == "accept" and r.accepted_clips == r.label.get("accepted_clips", 1))
        for caption in r.captions:
            if r.people is not None:
                self.accepted_people.add(len(caption.subjects) == r.people)
            self.still_captions.add(any(s.actions for s in caption.subjects))
            self.judge_passed.add(caption.judgement.passed)
        row["captions"] = [c.text for c in r.captions]
        row["judge"] = [list(c.judgement.reasons) for c in r.captions]
        if r.evidence is None:
            return row
        counts = [f.people for f in r.evidence.existence_frames]
        row["frame_counts"] = counts
        duration = r.evidence.info.duration_s
        if r.people == 0:
            for n in counts:
                self.false_people_on_empty.add(n == 0)
        elif r.people is not None and duration <= max_clip_s:
            for n in counts:
                self.frame_tp += min(n, r.people)
                self.frame_detected += n
                self.frame_expected += r.people
                self.frame_abs_error.append(abs(n - r.people))
        tracks = list(r.evidence.dense_tracks)
        row["tracks"] = len(tracks)
        if r.people:
            self.fragmentation.append(len(tracks) / r.people)
            self.one_track_per_person.add(len(tracks) == r.people)
        caption = r.evidence_caption
        if caption is None:
            return row
        row["evidence_caption"] = caption.text
        stated_interactions = list(caption.interactions)
        row["interactions"] = [f"{i.subject_label} {i.kind} {i.object_label}" for i in stated_interactions]
        labelled_interactions = r.label.get("interactions", [])
        if not labelled_interactions:
            self.invented_interactions += len(stated_interactions)
        else:
            for _ in labelled_interactions:
                self.interactions_recalled.add(bool(stated_interactions))
        subjects = r.label.get("subjects", [])
        matched = dict(match_subjects(subjects, caption))
        row["subjects"] = []
        # labelled subjects without a stated subject count as not covered and not recalled
        for index, label in enumerate(subjects):
            subject = matched.get(index)
            self._attributes(label, subject)
            stated = [a.verb_phrase for a in subject.actions] if subject else []
            row["subjects"].append(
                {
                    "label": label,
                    "stated": None
                    if subject is None
                    else {
                        "label": subject.label,
                        "gender": subject.attributes.gender,
                        "age_group": subject.attributes.age_group,
                        "garments": [f"{g.color} {g.item}" for g in subject.attributes.clothing],
                        "actions": stated,
                    },
                    "actions_recalled": [a for a in label.get("actions", []) if action_recalled(a, stated)],
                }
            )
        return row

    def _attributes(self, label: dict, subject: events_pb2.Subject | None) -> None:
        gender = _gender(subject) if subject else None
        age = _age(subject) if subject else None
        top, bottom = garments(subject) if subject else (None, None)
        for value, wanted, asserted, coverage, same in (
            (gender, label.get("gender"), self.gender_asserted, self.gender_coverage, lambda w, v: w == v),
            (age, label.get("age_group"), self.age_asserted, self.age_coverage, lambda w, v: w == v),
            (top, label.get("top"), self.top_asserted, self.top_coverage, colour_matches),
            (bottom, label.get("bottom"), self.bottom_asserted, self.bottom_coverage, colour_matches),
        ):
            known = _known(wanted) if not (wanted or "").lower().startswith("none") else "shirtless"
            if known is None:
                self.attribute_asserted_on_unknown += int(value is not None)
                continue
            coverage.add(value is not None)
            if value is not None:
                asserted.add(bool(same(wanted.lower() if isinstance(wanted, str) else wanted, value)))
        stated = [a.verb_phrase for a in subject.actions] if subject else []
        for action in label.get("actions", []):
            self.actions.add(action_recalled(action, stated))

    def lines(self) -> list[str]:
        precision = self.frame_tp / self.frame_detected if self.frame_detected else float("nan")
        recall = self.frame_tp / self.frame_expected if self.frame_expected else float("nan")
        mae = float(np.mean(self.frame_abs_error)) if self.frame_abs_error else float("nan")
        fragmentation = float(np.mean(self.fragmentation)) if self.fragmentation else float("nan")
        return [
            f"verdict right                     {self.verdict}",
            f"verdict and stage right           {self.stage}",
            f"accepted clips: people right      {self.accepted_people}",
            f"accepted clips: not stated still  {self.still_captions}",
            f"accepted clips: judge passed      {self.judge_passed}",
            f"per-frame count precision/recall  {precision:.2f} / {recall:.2f}  (mean abs error {mae:.2f}, "
            f"{len(self.frame_abs_error)} frames)",
            f"empty footage: frames with nobody {self.false_people_on_empty}",
            f"tracks per real person            {fragmentation:.2f}  (exactly one each: {self.one_track_per_person})",
            f"gender right when asserted        {self.gender_asserted}  (asserted {self.gender_coverage} of known)",
            f"age group right when asserted     {self.age_asserted}  (asserted {self.age_coverage} of known)",
            f"top colour right when asserted    {self.top_asserted}  (asserted {self.top_coverage} of known)",
            f"bottom colour right when asserted {self.bottom_asserted}  (asserted {self.bottom_coverage} of known)",
            f"attributes asserted where unknown {self.attribute_asserted_on_unknown}",
            f"labelled main actions recalled    {self.actions}",
            f"invented interactions             {self.invented_interactions}",
            f"labelled interactions recalled    {self.interactions_recalled}",
        ]

    def figures(self) -> dict:
        return {
            name: (value.ratio() if isinstance(value, Tally) else value)
            for name, value in vars(self).items()
            if not isinstance(value, list)
        }


def labelled_videos(root: Path) -> list[tuple[Path, dict]]:
    videos = []
    for folder in (root, root / "corpus"):
        labels_file = folder / "labels.json"
        if not labels_file.exists():
            continue
        for name, label in json.loads(labels_file.read_text()).items():
            if not name.startswith("_"):
                videos.append((folder / name, label))
    return videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=REPO_ROOT.parent / "shared" / "videos")
    parser.add_argument("--only", nargs="*", default=[], help="run only videos whose name contains one of these")
    parser.add_argument("--json", type=Path, help="write every row and figure here")
    parser.add_argument("--no-cache", action="store_true", help="recompute the pose outputs")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each video's captions")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    settings = Settings()
    cache = None if args.no_cache else settings.data_dir / "bench-cache"
    pipeline = Pipeline(settings, cache)
    summaries = {"clear": Summary(), "borderline": Summary()}
    rows = []
    videos = [
        (p, lab) for p, lab in labelled_videos(args.videos) if not args.only or any(o in p.name for o in args.only)
    ]
    print(f"{len(videos)} labelled videos from {args.videos}\n")
    print(f"{'video':<44} {'want':<16} {'got':<16} {'people':>6} {'frames':<18} {'tracks':>6}")
    for path, label in videos:
        result = run_video(pipeline, path, label)
        summary = summaries["borderline" if result.borderline else "clear"]
        row = summary.add(result, settings.max_clip_s)
        rows.append(row)
        want = label["expect"] + ("" if label["expect"] == "accept" else f"/{label.get('reject_stage')}")
        got = result.verdict + ("" if result.verdict == "accept" else f"/{result.stage}")
        counts = row.get("frame_counts")
        frames = (
            ""
            if counts is None
            else f"{min(counts, default=0)}-{max(counts, default=0)} (med {np.median(counts or [0]):.0f})"
        )
        mark = "" if result.verdict == label["expect"] else "  <-- verdict"
        print(
            f"{result.name + (' (borderline)' if result.borderline else ''):<44} {want:<16} {got:<16} "
            f"{label.get('people')!s:>6} {frames:<18} {row.get('tracks', '')!s:>6}{mark}"
        )
        if args.verbose:
            for text in [*row.get("captions", []), row.get("evidence_caption", "")]:
                if text:
                    print(f"    {text}")
            if row.get("interactions"):
                print(f"    interactions: {row['interactions']}")
    for name, summary in summaries.items():
        if summary.verdict.total:
            print(f"\n{name} videos ({summary.verdict.total})")
            print("\n".join("  " + line for line in summary.lines()))
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, **{k: s.figures() for k, s in summaries.items()}}, indent=1, default=str)
        )


if __name__ == "__main__":
    main()
