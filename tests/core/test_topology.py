"""The topology declared once: it names real packages, topics and gRPC services, and one convention holds."""

from __future__ import annotations

import importlib
from pathlib import Path

from google.protobuf import descriptor_pool

import haic.v1.captioner_pb2
import haic.v1.filter_pb2
import haic.v1.pipeline_pb2
import haic.v1.pose_pb2
import haic.v1.qagen_pb2
import haic.v1.scoring_pb2  # noqa: F401 - registers the services in the default pool
from services.core import topics, topology
from services.gateway.status import STAGE_ORDER

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def test_every_stage_is_a_package_with_known_topics_and_a_proto_service() -> None:
    pool = descriptor_pool.Default()
    for stage in topology.STAGES:
        assert (SERVICES_DIR / stage.name / "__main__.py").exists(), stage.name
        assert stage.input_topic in topics.MESSAGE_TYPES
        assert set(stage.output_topics) <= set(topics.MESSAGE_TYPES)
        assert pool.FindServiceByName(stage.grpc_service).full_name == stage.grpc_service
        assert importlib.import_module(f"{stage.module}.service").STAGE is stage
    pool.FindServiceByName(topology.GATEWAY_GRPC_SERVICE)


def test_one_naming_convention_for_grpc_services() -> None:
    names = [s.grpc_service for s in topology.STAGES] + [topology.GATEWAY_GRPC_SERVICE]
    assert all(name.startswith("haic.v1.") and name.endswith("Service") for name in names), names


def test_stages_chain_and_ports_are_distinct() -> None:
    for before, after in zip(topology.STAGES, topology.STAGES[1:], strict=False):
        assert after.input_topic in before.output_topics, (before.name, after.name)
    ports = [topology.GATEWAY_GRPC_PORT, topology.GATEWAY_HTTP_PORT]
    ports += [p for s in topology.STAGES for p in (s.grpc_port, s.metrics_port)]
    assert len(ports) == len(set(ports))
    assert tuple(s.name for s in topology.STAGES) == STAGE_ORDER
