"""The catalog's Kafka worker in a background thread, restarted after a crash, stopped on shutdown."""

from __future__ import annotations

import logging
import threading

from services.core import topics
from services.core.bus import Worker
from services.core.settings import Settings
from services.gateway.catalog import CONSUMER_GROUP, Catalog

log = logging.getLogger(__name__)

SERVICE_NAME = "gateway-catalog"
RESTART_DELAY_S = (1.0, 2.0, 5.0, 10.0)


class CatalogConsumer:
    """Runs a core Worker over every topic (group haic-gateway-catalog) with the catalog as handler
    and offset store. The Worker's rebalance listener seeks to the catalog's stored offsets, or to the
    beginning when the catalog has none, which is how an empty catalog rebuilds itself."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._worker: Worker | None = None
        self._thread: threading.Thread | None = None

    @property
    def assigned(self) -> bool:
        """True while the consumer group has given this worker its partitions."""
        worker = self._worker
        return worker is not None and worker.assigned.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="catalog-consumer", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
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
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("catalog consumer did not stop within %.0f s", timeout_s)
