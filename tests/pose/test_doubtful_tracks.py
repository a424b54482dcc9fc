"""Dense tracks that are no person: never sure, rigid (services/pose/tracking.py, ``is_doubtful``).

Real tracks recorded by the quality bench (bench/curation_quality.py, whole shots with the rules opened):
man_dances_kitchen_drawings.mp4 (tests/captioner/data/man_dances_shot.binpb: the dancer, and a koi poster on
the wall that passed the body check in a few frames) and man_gestures_dark_stage.mp4
(data/dim_stage_man_shot.binpb: a man on a dim stage the detector scores 0.24 to 0.57, under the sure score
in 22 of his 38 samples).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from haic.v1 import events_pb2
from services.core.settings import Settings
from services.pose.tracking import DoubtRules, Observation, Track, is_doubtful, without_doubtful_tracks

DATA = Path(__file__).parent / "data"
CAPTIONER_DATA = Path(__file__).parents[1] / "captioner" / "data"
SETTINGS = Settings()
RULES = DoubtRules(SETTINGS.min_person_score, SETTINGS.doubtful_track_min_residual, SETTINGS.min_keypoint_score)


def _tracks(path: Path) -> tuple[list[Track], tuple[int, int]]:
    clip = events_pb2.ClipVerdict.FromString(path.read_bytes())
    tracks = [
        Track(
            t.track_id,
            [
                Observation(
                    s.t_s,
                    np.array([s.box.x1, s.box.y1, s.box.x2, s.box.y2]),
                    s.box.score,
                    np.array([[k.x, k.y, k.score] for k in s.keypoints]),
                )
                for s in t.samples
            ],
        )
        for t in clip.dense_tracks
    ]
    return tracks, (clip.info.width, clip.info.height)


def test_a_poster_that_passed_the_body_check_is_no_person_the_dancer_is() -> None:
    tracks, size = _tracks(CAPTIONER_DATA / "man_dances_shot.binpb")
    dancer, *posters = sorted(tracks, key=lambda t: -len(t.samples))
    assert posters and all(max(o.score for o in p.samples) < RULES.sure_score for p in posters)
    assert all(is_doubtful(p, RULES, size) for p in posters)
    assert not is_doubtful(dancer, RULES, size)
    [kept] = without_doubtful_tracks(tracks, RULES, size)
    assert kept.track_id == 0 and len(kept.samples) == len(dancer.samples)


def test_a_dim_real_person_moves_like_a_body_even_where_never_sure() -> None:
    [man], size = _tracks(DATA / "dim_stage_man_shot.binpb")
    assert not is_doubtful(man, RULES, size)
    # his samples the detector was unsure of, alone: still a body that moves its limbs
    unsure = Track(man.track_id, [o for o in man.samples if o.score < RULES.sure_score])
    assert len(unsure.samples) >= 20
    assert not is_doubtful(unsure, RULES, size)
    # the same samples made rigid (every sample a copy of the first): a thing, not a person
    still = Track(man.track_id, [replace(o, keypoints=unsure.samples[0].keypoints) for o in unsure.samples])
    assert is_doubtful(still, RULES, size)
    # one sure sample is a person on the detector's word, moving or not
    sure = Track(man.track_id, [replace(still.samples[0], score=RULES.sure_score), *still.samples[1:]])
    assert not is_doubtful(sure, RULES, size)
