"""The catalog's Kafka worker in a background thread, restarted after a crash, stopped on shutdown.

Before each start it checks which Kafka cluster it reads: when the catalog followed another one (the
broker's data was deleted, or the stack points at a new cluster), the catalog's offsets are dropped and
every stored video is announced again, so none waits for events that can no longer come. A watcher
checks the cluster id every HAIC_CLUSTER_CHECK_S and restarts the worker when it changes under it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import ClusterIdError, Worker, ensure_topics, kafka_cluster_id
from services.core.settings import GatewayServiceSettings
from services.gateway.catalog import Catalog
from services.gateway.catalog_projection import CONSUMER_GROUP

log = logging.getLogger(__name__)

SERVICE_NAME = "gateway-catalog"
RESTART_DELAY_S = (1.0, 2.0, 5.0, 10.0)


class CatalogConsumer:
    """Runs a core Worker over every topic (group haic-gateway-catalog) with the catalog as handler
    and offset store. The Worker's rebalance listener seeks to the catalog's stored offsets, or to the
    beginning when the catalog has none, which is how an empty catalog rebuilds itself."""

    def __init__(
        self,
        settings: GatewayServiceSettings,
        catalog: Catalog,
        reannounce: Callable[[list[events_pb2.VideoUploaded]], int] | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.reannounce = reannounce
        self.cluster_id: str | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._worker: Worker | None = None
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None

    @property
    def assigned(self) -> bool:
        """True while the consumer group has given this worker its partitions."""
        worker = self._worker
        return worker is not None and worker.assigned.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="catalog-consumer", daemon=True)
        self._thread.start()
        self._watcher = threading.Thread(target=self._watch_cluster, name="catalog-cluster-watch", daemon=True)
        self._watcher.start()

    def reconcile_cluster(self) -> None:
        """Binds the catalog to the cluster it is about to read; announces every stored video again first
        when that is another cluster than the one it followed (the binding drops the old offsets)."""
        cluster_id = kafka_cluster_id(self.settings)
        if self.catalog.follows_other_cluster(cluster_id):
            uploads = self.catalog.uploads()
            log.warning(
                "Kafka cluster %s is not the one the catalog followed: announcing its %d video(s) again",
                cluster_id, len(uploads),
            )  # fmt: skip
            if self.reannounce is not None and uploads:
                ensure_topics(self.settings)
                self.reannounce(uploads)
        # bound only after the announcements went out: a crash in between announces them again next time
        self.catalog.bind_cluster(cluster_id)
        self.cluster_id = cluster_id

    def _watch_cluster(self) -> None:
        while not self._stopping.wait(self.settings.cluster_check_s):
            try:
                current = kafka_cluster_id(self.settings)
            except ClusterIdError as exc:
                log.info("cluster check skipped: %s", exc)
                continue
            if self.cluster_id is not None and current != self.cluster_id:
                log.warning(
                    "the Kafka cluster changed (%s -> %s): restarting the catalog consumer", self.cluster_id, current
                )
                with self._lock:
                    if self._worker is not None:
                        self._worker.stop()

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self.reconcile_cluster()
                worker = Worker(
                    self.settings,
                    SERVICE_NAME,
                    topics.ALL_TOPICS,
                    self.catalog.handle,
                    group_id=CONSUMER_GROUP,
                    offset_store=self.catalog,
                )
                with self._lock:
                    self._worker = worker
                    if self._stopping.is_set():
                        worker.stop()  # stop() ran while this worker was being created
                worker.run()
                failures = 0
            except Exception:  # the supervisor logs it and restarts the worker
                log.exception("catalog consumer crashed; restarting")
                failures += 1
            delay = RESTART_DELAY_S[min(failures, len(RESTART_DELAY_S) - 1)] if failures else 0.0
            self._stopping.wait(delay)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finishes the in-flight message, commits, leaves the group and waits for the thread."""
        with self._lock:
            self._stopping.set()
            if self._worker is not None:
                self._worker.stop()
        if self._watcher is not None:
            self._watcher.join(timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("catalog consumer did not stop within %.0f s", timeout_s)
