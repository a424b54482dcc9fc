"""What the gateway runs beside its HTTP app: catalog, store, producer, catalog consumer, gRPC server."""

from __future__ import annotations

import logging

from services.core import topology
from services.core.bus import ConsumerLag, EventProducer, ensure_topics
from services.core.grpc_server import GrpcServer
from services.core.settings import GatewayServiceSettings
from services.core.storage import Storage, open_storage
from services.gateway.catalog import Catalog
from services.gateway.consumer import CatalogConsumer
from services.gateway.errors import GatewayConfigError
from services.gateway.grpc_api import pipeline_registration
from services.gateway.references import ReferenceFetcher
from services.gateway.upload import Uploader

log = logging.getLogger(__name__)


class GatewayRuntime:
    """Started in the FastAPI lifespan (blocking calls: run it in a thread) and stopped on shutdown."""

    def __init__(self, settings: GatewayServiceSettings) -> None:
        self.settings = settings
        self.catalog: Catalog | None = None
        self.storage: Storage | None = None
        self.producer: EventProducer | None = None
        self.consumer: CatalogConsumer | None = None
        self.grpc: GrpcServer | None = None
        self.uploader: Uploader | None = None
        self.lag: ConsumerLag | None = None

    @classmethod
    def start(cls, settings: GatewayServiceSettings) -> GatewayRuntime:
        runtime = cls(settings)
        try:
            runtime.catalog = Catalog(settings.resolved_catalog_url, settings.catalog_final_stage)
            runtime.storage = open_storage(settings)
            ensure_topics(settings)  # the first upload must not race the topic's creation
            runtime.producer = EventProducer(settings, "gateway")
            try:
                references = ReferenceFetcher(settings, runtime.storage.spool_dir(), settings.max_upload_bytes)
            except ValueError as exc:
                raise GatewayConfigError(str(exc)) from exc
            runtime.uploader = Uploader(
                runtime.storage,
                runtime.catalog,
                runtime.producer,
                settings.max_upload_bytes,
                reannounce_after_s=settings.reannounce_after_s,
                references=references,
            )
            runtime.lag = ConsumerLag(settings, topology.STAGES)
            runtime.consumer = CatalogConsumer(settings, runtime.catalog, reannounce=runtime.uploader.reannounce)
            runtime.consumer.start()
            runtime.grpc = GrpcServer([pipeline_registration(runtime.catalog)], settings.grpc_port)
            runtime.grpc.start()
        except BaseException:
            runtime.stop()
            raise
        log.info(
            "gateway started: gRPC %d, catalog %s", runtime.grpc.port, runtime.catalog.engine.url.render_as_string()
        )
        return runtime

    @property
    def grpc_port(self) -> int:
        return self.grpc.port if self.grpc is not None else 0

    def stop(self) -> None:
        """gRPC first (watchers drain), then the consumer (in-flight message committed), then the rest."""
        if self.grpc is not None:
            self.grpc.stop()
        if self.consumer is not None:
            self.consumer.stop()
        if self.producer is not None:
            self.producer.close()
        if self.lag is not None:
            self.lag.close()
        if self.catalog is not None:
            self.catalog.close()
        log.info("gateway stopped")
