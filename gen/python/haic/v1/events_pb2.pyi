import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ACCEPTED: _ClassVar[Verdict]
    VERDICT_REJECTED: _ClassVar[Verdict]

class InteractionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERACTION_KIND_UNSPECIFIED: _ClassVar[InteractionKind]
    INTERACTION_KIND_APPROACHING: _ClassVar[InteractionKind]
    INTERACTION_KIND_MOVING_APART: _ClassVar[InteractionKind]
    INTERACTION_KIND_TOUCHING: _ClassVar[InteractionKind]
    INTERACTION_KIND_HUGGING: _ClassVar[InteractionKind]
    INTERACTION_KIND_FACING_EACH_OTHER: _ClassVar[InteractionKind]
    INTERACTION_KIND_FOLLOWING: _ClassVar[InteractionKind]

class QACategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QA_CATEGORY_UNSPECIFIED: _ClassVar[QACategory]
    QA_CATEGORY_INTERACTION: _ClassVar[QACategory]
    QA_CATEGORY_ACTION_DETAILS: _ClassVar[QACategory]
    QA_CATEGORY_ACTION_SEQUENCE: _ClassVar[QACategory]
    QA_CATEGORY_COUNT: _ClassVar[QACategory]
    QA_CATEGORY_ATTRIBUTE: _ClassVar[QACategory]
    QA_CATEGORY_MOVING_DIRECTION: _ClassVar[QACategory]
    QA_CATEGORY_TEMPORAL_LOCALIZATION: _ClassVar[QACategory]
    QA_CATEGORY_LOCAL_POSTURE: _ClassVar[QACategory]
    QA_CATEGORY_GLOBAL_POSTURE: _ClassVar[QACategory]
    QA_CATEGORY_HUMAN_OBJECT_INTERACTION: _ClassVar[QACategory]

class ReviewDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_DECISION_UNSPECIFIED: _ClassVar[ReviewDecision]
    REVIEW_DECISION_ACCEPTED: _ClassVar[ReviewDecision]
    REVIEW_DECISION_REJECTED: _ClassVar[ReviewDecision]

class ItemDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_DECISION_UNSPECIFIED: _ClassVar[ItemDecision]
    ITEM_DECISION_APPROVED: _ClassVar[ItemDecision]
    ITEM_DECISION_EDITED: _ClassVar[ItemDecision]
    ITEM_DECISION_REJECTED: _ClassVar[ItemDecision]
    ITEM_DECISION_ADDED: _ClassVar[ItemDecision]
VERDICT_UNSPECIFIED: Verdict
VERDICT_ACCEPTED: Verdict
VERDICT_REJECTED: Verdict
INTERACTION_KIND_UNSPECIFIED: InteractionKind
INTERACTION_KIND_APPROACHING: InteractionKind
INTERACTION_KIND_MOVING_APART: InteractionKind
INTERACTION_KIND_TOUCHING: InteractionKind
INTERACTION_KIND_HUGGING: InteractionKind
INTERACTION_KIND_FACING_EACH_OTHER: InteractionKind
INTERACTION_KIND_FOLLOWING: InteractionKind
QA_CATEGORY_UNSPECIFIED: QACategory
QA_CATEGORY_INTERACTION: QACategory
QA_CATEGORY_ACTION_DETAILS: QACategory
QA_CATEGORY_ACTION_SEQUENCE: QACategory
QA_CATEGORY_COUNT: QACategory
QA_CATEGORY_ATTRIBUTE: QACategory
QA_CATEGORY_MOVING_DIRECTION: QACategory
QA_CATEGORY_TEMPORAL_LOCALIZATION: QACategory
QA_CATEGORY_LOCAL_POSTURE: QACategory
QA_CATEGORY_GLOBAL_POSTURE: QACategory
QA_CATEGORY_HUMAN_OBJECT_INTERACTION: QACategory
REVIEW_DECISION_UNSPECIFIED: ReviewDecision
REVIEW_DECISION_ACCEPTED: ReviewDecision
REVIEW_DECISION_REJECTED: ReviewDecision
ITEM_DECISION_UNSPECIFIED: ItemDecision
ITEM_DECISION_APPROVED: ItemDecision
ITEM_DECISION_EDITED: ItemDecision
ITEM_DECISION_REJECTED: ItemDecision
ITEM_DECISION_ADDED: ItemDecision

class VideoInfo(_message.Message):
    __slots__ = ("width", "height", "fps", "duration_s", "frame_count", "codec", "container")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    fps: float
    duration_s: float
    frame_count: int
    codec: str
    container: str
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., duration_s: _Optional[float] = ..., frame_count: _Optional[int] = ..., codec: _Optional[str] = ..., container: _Optional[str] = ...) -> None: ...

class VideoUploaded(_message.Message):
    __slots__ = ("video_id", "sha256", "storage_uri", "size_bytes", "description", "source_url", "info", "uploaded_at")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_AT_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    sha256: str
    storage_uri: str
    size_bytes: int
    description: str
    source_url: str
    info: VideoInfo
    uploaded_at: _timestamp_pb2.Timestamp
    def __init__(self, video_id: _Optional[str] = ..., sha256: _Optional[str] = ..., storage_uri: _Optional[str] = ..., size_bytes: _Optional[int] = ..., description: _Optional[str] = ..., source_url: _Optional[str] = ..., info: _Optional[_Union[VideoInfo, _Mapping]] = ..., uploaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClipSpan(_message.Message):
    __slots__ = ("clip_id", "start_s", "end_s", "clip_index", "clip_count", "scene_index")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    CLIP_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLIP_COUNT_FIELD_NUMBER: _ClassVar[int]
    SCENE_INDEX_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    start_s: float
    end_s: float
    clip_index: int
    clip_count: int
    scene_index: int
    def __init__(self, clip_id: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., clip_index: _Optional[int] = ..., clip_count: _Optional[int] = ..., scene_index: _Optional[int] = ...) -> None: ...

class ClipCandidate(_message.Message):
    __slots__ = ("video_id", "span", "storage_uri", "info", "description", "values", "produced_at")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    PRODUCED_AT_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    span: ClipSpan
    storage_uri: str
    info: VideoInfo
    description: str
    values: _containers.ScalarMap[str, float]
    produced_at: _timestamp_pb2.Timestamp
    def __init__(self, video_id: _Optional[str] = ..., span: _Optional[_Union[ClipSpan, _Mapping]] = ..., storage_uri: _Optional[str] = ..., info: _Optional[_Union[VideoInfo, _Mapping]] = ..., description: _Optional[str] = ..., values: _Optional[_Mapping[str, float]] = ..., produced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Keypoint(_message.Message):
    __slots__ = ("x", "y", "score")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    score: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2", "score")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class PoseSample(_message.Message):
    __slots__ = ("t_s", "box", "keypoints")
    T_S_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    t_s: float
    box: Box
    keypoints: _containers.RepeatedCompositeFieldContainer[Keypoint]
    def __init__(self, t_s: _Optional[float] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., keypoints: _Optional[_Iterable[_Union[Keypoint, _Mapping]]] = ...) -> None: ...

class PersonTrack(_message.Message):
    __slots__ = ("track_id", "samples", "attributes")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    track_id: int
    samples: _containers.RepeatedCompositeFieldContainer[PoseSample]
    attributes: PersonAttributes
    def __init__(self, track_id: _Optional[int] = ..., samples: _Optional[_Iterable[_Union[PoseSample, _Mapping]]] = ..., attributes: _Optional[_Union[PersonAttributes, _Mapping]] = ...) -> None: ...

class PersonAttributes(_message.Message):
    __slots__ = ("gender", "gender_confidence", "age_group", "age_group_confidence", "age_years", "faces_seen", "samples_tried", "unknown_reason")
    GENDER_FIELD_NUMBER: _ClassVar[int]
    GENDER_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    AGE_GROUP_FIELD_NUMBER: _ClassVar[int]
    AGE_GROUP_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    AGE_YEARS_FIELD_NUMBER: _ClassVar[int]
    FACES_SEEN_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_TRIED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_REASON_FIELD_NUMBER: _ClassVar[int]
    gender: str
    gender_confidence: float
    age_group: str
    age_group_confidence: float
    age_years: float
    faces_seen: int
    samples_tried: int
    unknown_reason: str
    def __init__(self, gender: _Optional[str] = ..., gender_confidence: _Optional[float] = ..., age_group: _Optional[str] = ..., age_group_confidence: _Optional[float] = ..., age_years: _Optional[float] = ..., faces_seen: _Optional[int] = ..., samples_tried: _Optional[int] = ..., unknown_reason: _Optional[str] = ...) -> None: ...

class ClipVerdict(_message.Message):
    __slots__ = ("video_id", "span", "verdict", "stage", "reason_code", "reason", "values", "storage_uri", "info", "description", "tracks", "dense_tracks", "produced_at", "existence_frames")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    DENSE_TRACKS_FIELD_NUMBER: _ClassVar[int]
    PRODUCED_AT_FIELD_NUMBER: _ClassVar[int]
    EXISTENCE_FRAMES_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    span: ClipSpan
    verdict: Verdict
    stage: str
    reason_code: str
    reason: str
    values: _containers.ScalarMap[str, float]
    storage_uri: str
    info: VideoInfo
    description: str
    tracks: _containers.RepeatedCompositeFieldContainer[PersonTrack]
    dense_tracks: _containers.RepeatedCompositeFieldContainer[PersonTrack]
    produced_at: _timestamp_pb2.Timestamp
    existence_frames: _containers.RepeatedCompositeFieldContainer[FramePeople]
    def __init__(self, video_id: _Optional[str] = ..., span: _Optional[_Union[ClipSpan, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., stage: _Optional[str] = ..., reason_code: _Optional[str] = ..., reason: _Optional[str] = ..., values: _Optional[_Mapping[str, float]] = ..., storage_uri: _Optional[str] = ..., info: _Optional[_Union[VideoInfo, _Mapping]] = ..., description: _Optional[str] = ..., tracks: _Optional[_Iterable[_Union[PersonTrack, _Mapping]]] = ..., dense_tracks: _Optional[_Iterable[_Union[PersonTrack, _Mapping]]] = ..., produced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., existence_frames: _Optional[_Iterable[_Union[FramePeople, _Mapping]]] = ...) -> None: ...

class FramePeople(_message.Message):
    __slots__ = ("t_s", "people", "coverage")
    T_S_FIELD_NUMBER: _ClassVar[int]
    PEOPLE_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    t_s: float
    people: int
    coverage: float
    def __init__(self, t_s: _Optional[float] = ..., people: _Optional[int] = ..., coverage: _Optional[float] = ...) -> None: ...

class Garment(_message.Message):
    __slots__ = ("item", "color")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    item: str
    color: str
    def __init__(self, item: _Optional[str] = ..., color: _Optional[str] = ...) -> None: ...

class SubjectAttributes(_message.Message):
    __slots__ = ("gender", "age_group", "clothing", "accessories")
    GENDER_FIELD_NUMBER: _ClassVar[int]
    AGE_GROUP_FIELD_NUMBER: _ClassVar[int]
    CLOTHING_FIELD_NUMBER: _ClassVar[int]
    ACCESSORIES_FIELD_NUMBER: _ClassVar[int]
    gender: str
    age_group: str
    clothing: _containers.RepeatedCompositeFieldContainer[Garment]
    accessories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, gender: _Optional[str] = ..., age_group: _Optional[str] = ..., clothing: _Optional[_Iterable[_Union[Garment, _Mapping]]] = ..., accessories: _Optional[_Iterable[str]] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("start_s", "end_s", "signals")
    class SignalsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    signals: _containers.ScalarMap[str, float]
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., signals: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("start_s", "end_s", "verb_phrase", "body_part", "direction", "repetitions", "target", "evidence")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    VERB_PHRASE_FIELD_NUMBER: _ClassVar[int]
    BODY_PART_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    REPETITIONS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    verb_phrase: str
    body_part: str
    direction: str
    repetitions: int
    target: str
    evidence: Evidence
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., verb_phrase: _Optional[str] = ..., body_part: _Optional[str] = ..., direction: _Optional[str] = ..., repetitions: _Optional[int] = ..., target: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("track_id", "label", "attributes", "actions")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    track_id: int
    label: str
    attributes: SubjectAttributes
    actions: _containers.RepeatedCompositeFieldContainer[Action]
    def __init__(self, track_id: _Optional[int] = ..., label: _Optional[str] = ..., attributes: _Optional[_Union[SubjectAttributes, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[Action, _Mapping]]] = ...) -> None: ...

class Interaction(_message.Message):
    __slots__ = ("start_s", "end_s", "kind", "subject_label", "object_label", "evidence")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_LABEL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_LABEL_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    kind: str
    subject_label: str
    object_label: str
    evidence: Evidence
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., kind: _Optional[str] = ..., subject_label: _Optional[str] = ..., object_label: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ...) -> None: ...

class Judgement(_message.Message):
    __slots__ = ("passed", "reasons", "scores", "judge")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PASSED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    reasons: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.ScalarMap[str, float]
    judge: str
    def __init__(self, passed: bool = ..., reasons: _Optional[_Iterable[str]] = ..., scores: _Optional[_Mapping[str, float]] = ..., judge: _Optional[str] = ...) -> None: ...

class Caption(_message.Message):
    __slots__ = ("video_id", "span", "subjects", "interactions", "text", "backend", "judgement", "storage_uri", "produced_at")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    JUDGEMENT_FIELD_NUMBER: _ClassVar[int]
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    PRODUCED_AT_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    span: ClipSpan
    subjects: _containers.RepeatedCompositeFieldContainer[Subject]
    interactions: _containers.RepeatedCompositeFieldContainer[Interaction]
    text: str
    backend: str
    judgement: Judgement
    storage_uri: str
    produced_at: _timestamp_pb2.Timestamp
    def __init__(self, video_id: _Optional[str] = ..., span: _Optional[_Union[ClipSpan, _Mapping]] = ..., subjects: _Optional[_Iterable[_Union[Subject, _Mapping]]] = ..., interactions: _Optional[_Iterable[_Union[Interaction, _Mapping]]] = ..., text: _Optional[str] = ..., backend: _Optional[str] = ..., judgement: _Optional[_Union[Judgement, _Mapping]] = ..., storage_uri: _Optional[str] = ..., produced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QAItem(_message.Message):
    __slots__ = ("item_id", "category", "question", "options", "answer_index", "facts")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_INDEX_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    category: QACategory
    question: str
    options: _containers.RepeatedScalarFieldContainer[str]
    answer_index: int
    facts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: _Optional[str] = ..., category: _Optional[_Union[QACategory, str]] = ..., question: _Optional[str] = ..., options: _Optional[_Iterable[str]] = ..., answer_index: _Optional[int] = ..., facts: _Optional[_Iterable[str]] = ...) -> None: ...

class QASet(_message.Message):
    __slots__ = ("video_id", "span", "items", "backend", "produced_at", "caption", "storage_uri")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PRODUCED_AT_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    span: ClipSpan
    items: _containers.RepeatedCompositeFieldContainer[QAItem]
    backend: str
    produced_at: _timestamp_pb2.Timestamp
    caption: Caption
    storage_uri: str
    def __init__(self, video_id: _Optional[str] = ..., span: _Optional[_Union[ClipSpan, _Mapping]] = ..., items: _Optional[_Iterable[_Union[QAItem, _Mapping]]] = ..., backend: _Optional[str] = ..., produced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., caption: _Optional[_Union[Caption, _Mapping]] = ..., storage_uri: _Optional[str] = ...) -> None: ...

class CategoryScore(_message.Message):
    __slots__ = ("category", "correct", "total", "accuracy")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    category: QACategory
    correct: int
    total: int
    accuracy: float
    def __init__(self, category: _Optional[_Union[QACategory, str]] = ..., correct: _Optional[int] = ..., total: _Optional[int] = ..., accuracy: _Optional[float] = ...) -> None: ...

class ScoreRecord(_message.Message):
    __slots__ = ("video_id", "span", "answerer", "setting", "categories", "average", "ci_low", "ci_high", "chance", "produced_at", "refused", "unparsed")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    ANSWERER_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    PRODUCED_AT_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    UNPARSED_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    span: ClipSpan
    answerer: str
    setting: str
    categories: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    average: float
    ci_low: float
    ci_high: float
    chance: float
    produced_at: _timestamp_pb2.Timestamp
    refused: int
    unparsed: int
    def __init__(self, video_id: _Optional[str] = ..., span: _Optional[_Union[ClipSpan, _Mapping]] = ..., answerer: _Optional[str] = ..., setting: _Optional[str] = ..., categories: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., average: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., chance: _Optional[float] = ..., produced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refused: _Optional[int] = ..., unparsed: _Optional[int] = ...) -> None: ...

class QAItemReview(_message.Message):
    __slots__ = ("item_id", "decision", "before", "after")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    decision: ItemDecision
    before: QAItem
    after: QAItem
    def __init__(self, item_id: _Optional[str] = ..., decision: _Optional[_Union[ItemDecision, str]] = ..., before: _Optional[_Union[QAItem, _Mapping]] = ..., after: _Optional[_Union[QAItem, _Mapping]] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("review_id", "video_id", "span", "reviewer", "reviewed_at", "checks_review_id", "decision", "caption_before", "caption_after", "items", "note", "storage_uri")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_AT_FIELD_NUMBER: _ClassVar[int]
    CHECKS_REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    CAPTION_BEFORE_FIELD_NUMBER: _ClassVar[int]
    CAPTION_AFTER_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    video_id: str
    span: ClipSpan
    reviewer: str
    reviewed_at: _timestamp_pb2.Timestamp
    checks_review_id: str
    decision: ReviewDecision
    caption_before: Caption
    caption_after: Caption
    items: _containers.RepeatedCompositeFieldContainer[QAItemReview]
    note: str
    storage_uri: str
    def __init__(self, review_id: _Optional[str] = ..., video_id: _Optional[str] = ..., span: _Optional[_Union[ClipSpan, _Mapping]] = ..., reviewer: _Optional[str] = ..., reviewed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., checks_review_id: _Optional[str] = ..., decision: _Optional[_Union[ReviewDecision, str]] = ..., caption_before: _Optional[_Union[Caption, _Mapping]] = ..., caption_after: _Optional[_Union[Caption, _Mapping]] = ..., items: _Optional[_Iterable[_Union[QAItemReview, _Mapping]]] = ..., note: _Optional[str] = ..., storage_uri: _Optional[str] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("original_topic", "partition", "offset", "key", "payload", "error", "error_type", "attempts", "service", "failed_at")
    ORIGINAL_TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    original_topic: str
    partition: int
    offset: int
    key: bytes
    payload: bytes
    error: str
    error_type: str
    attempts: int
    service: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, original_topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., key: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., error: _Optional[str] = ..., error_type: _Optional[str] = ..., attempts: _Optional[int] = ..., service: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
