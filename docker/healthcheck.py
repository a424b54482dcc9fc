"""Container health check of every service image: the standard gRPC health service reports SERVING.

Every service (the gateway too) serves grpc.health.v1 on HAIC_GRPC_PORT, so one check fits the one
image whatever `python -m services.<name>` it runs. Exit 0 when healthy, 1 otherwise (Docker's
HEALTHCHECK convention). Kubernetes probes the same service with its built-in `grpc:` probe.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, timeout_s: float = 3.0) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            print(f"{target}: {exc.code().name} {exc.details()}", file=sys.stderr)
            return False
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}", file=sys.stderr)
        return False
    return True


def main() -> int:
    target = sys.argv[1] if len(sys.argv) > 1 else f"127.0.0.1:{os.environ.get('HAIC_GRPC_PORT', '50051')}"
    return 0 if check(target) else 1


if __name__ == "__main__":
    sys.exit(main())
