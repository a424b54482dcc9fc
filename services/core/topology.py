"""The pipeline's topology, declared once: its stages in order, the topic each consumes and those it
produces, its consumer group, its gRPC service and default ports.

Read by the workers (what to consume and produce), the launcher (what to start, on which ports), the
gateway's status logic (the stage order), the yield report and backlog (which group consumes what), the
dashboard generator (the funnel's topics) and the deployment checks (k8s manifests against these ports).
Adding a stage is one entry here plus its service package.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core import topics


@dataclass(frozen=True)
class StageSpec:
    name: str  # also the package (services/<name>), the log and metrics `service` label
    input_topic: str
    output_topics: tuple[str, ...]
    grpc_service: str  # full name of its gRPC service
    grpc_port: int  # default ports (HAIC_GRPC_PORT, HAIC_METRICS_PORT) of the local stack and the manifests
    metrics_port: int
    funnel_label: str  # what its input topic carries, as the dashboards' funnel names it

    @property
    def consumer_group(self) -> str:
        return f"haic-{self.name}"

    @property
    def module(self) -> str:
        """What `python -m` runs."""
        return f"services.{self.name}"


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "filter",
        topics.VIDEOS,
        (topics.CLIPS_CANDIDATE, topics.CLIPS_REJECTED),
        "haic.v1.FilterService",
        50051,
        9101,
        "videos",
    ),
    StageSpec(
        "pose",
        topics.CLIPS_CANDIDATE,
        (topics.CLIPS_ACCEPTED, topics.CLIPS_REJECTED),
        "haic.v1.PoseService",
        50052,
        9102,
        "candidate clips",
    ),
    StageSpec(
        "captioner",
        topics.CLIPS_ACCEPTED,
        (topics.CAPTIONS,),
        "haic.v1.CaptionerService",
        50053,
        9103,
        "accepted clips",
    ),
    StageSpec("qagen", topics.CAPTIONS, (topics.QA,), "haic.v1.QAGeneratorService", 50054, 9104, "captions"),
    StageSpec("scoring", topics.QA, (topics.SCORES,), "haic.v1.ScoringService", 50055, 9105, "QA sets"),
)

STAGE_ORDER: tuple[str, ...] = tuple(stage.name for stage in STAGES)
BY_NAME: dict[str, StageSpec] = {stage.name: stage for stage in STAGES}

# The gateway is no stage: it produces haic.videos.v1 and serves HTTP (/metrics on its HTTP port).
GATEWAY_NAME = "gateway"
GATEWAY_GRPC_SERVICE = "haic.v1.PipelineService"
GATEWAY_GRPC_PORT = 50050
GATEWAY_HTTP_PORT = 8080


def stage(name: str) -> StageSpec:
    """The stage of that name; KeyError names the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no stage {name!r}; the stages are {', '.join(STAGE_ORDER)}") from None
