"""The embedded broker: Apache Kafka itself, a single-node KRaft cluster (combined controller and broker).

Used by the launcher (`haic up`) and the test fixtures; production points HAIC_KAFKA_BOOTSTRAP_SERVERS at a
Kafka cluster instead. Apache Kafka is not packaged on PyPI, npm or Debian, so the set-up assembles its class
path from Maven Central once (`mvn dependency:copy-dependencies` on deploy/kafka/pom.xml) into a cache
directory keyed by the version, and the broker runs as `java -cp <jars> kafka.Kafka server.properties`,
which is what the distribution's kafka-server-start.sh runs.

The broker's log directory is under the data directory, so topics, committed offsets and the dataset they
hold survive a restart of the broker, of the launcher and of the machine. Storage is formatted once (what
`kafka-storage.sh format` runs); a formatted directory is left as it is, with its cluster id.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.core.process import REPO_ROOT, stop_process, with_parent_death_signal
from services.core.settings import Settings, load

log = logging.getLogger(__name__)

POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"
# Pinned so the assembly does not depend on whichever plugin version Maven resolves on the day.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
NODE_ID = 1


class BrokerError(RuntimeError):
    """The embedded broker could not be assembled, formatted, started or stopped."""


class BrokerAssemblyError(BrokerError):
    """Maven could not assemble the Kafka class path (no mvn, no network to Maven Central, unknown version)."""


class BrokerStartError(BrokerError):
    """The broker exited or did not accept connections in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerStartError(f"process {process.pid} exited with {process.returncode}")
        if port_is_open(host, port):
            return
        time.sleep(0.05)
    raise BrokerStartError(f"{host}:{port} did not accept connections within {timeout_s} s")


@dataclass(frozen=True)
class KafkaDistribution:
    """Apache Kafka's jars for one version, assembled from Maven Central into <home>/<version>/libs."""

    version: str
    home: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaDistribution:
        return cls(settings.kafka_version, settings.kafka_home.expanduser())

    @property
    def libs(self) -> Path:
        return self.home / self.version / "libs"

    @property
    def classpath(self) -> str:
        return f"{self.libs}/*"

    @property
    def assembled(self) -> bool:
        return (self.home / self.version / "complete").is_file()

    def ensure(self, timeout_s: float = 600.0) -> KafkaDistribution:
        """Assembles the class path once; concurrent callers (tests, the launcher) wait for one another."""
        if self.assembled:
            return self
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerAssemblyError("Maven (mvn) is not installed: it assembles the embedded Kafka broker")
        version_dir = self.home / self.version
        version_dir.mkdir(parents=True, exist_ok=True)
        with (version_dir / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.assembled:
                return self
            staging = version_dir / "libs.partial"
            shutil.rmtree(staging, ignore_errors=True)
            command = [
                mvn,
                "--batch-mode",
                "--quiet",
                "--file",
                str(POM),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-Dkafka.version={self.version}",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ]
            log.info("assembling Apache Kafka %s from Maven Central into %s", self.version, self.libs)
            started = time.monotonic()
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
            except subprocess.TimeoutExpired as exc:
                raise BrokerAssemblyError(f"mvn did not finish within {timeout_s} s") from exc
            if result.returncode != 0 or not any(staging.glob(f"kafka_2.13-{self.version}.jar")):
                tail = (result.stdout + result.stderr)[-3000:]
                raise BrokerAssemblyError(
                    f"mvn could not assemble Kafka {self.version} (exit {result.returncode}):\n{tail}"
                )
            shutil.rmtree(self.libs, ignore_errors=True)
            staging.rename(self.libs)
            (version_dir / "complete").write_text(f"{len(list(self.libs.glob('*.jar')))} jars\n")
            log.info("assembled Kafka %s in %.0f s", self.version, time.monotonic() - started)
        return self


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes them (Uuid.randomUuid().toString(): URL-safe base64, no padding),
    and like Kafka's never one that starts with a dash, which a command line would read as an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class EmbeddedBroker:
    """A single-node KRaft Apache Kafka on 127.0.0.1:port, its log directory under data_dir.

    data_dir holds server.properties, the formatted log directory (kafka-logs/) and a pid file. Start it on
    the same data_dir again and every topic, record and committed offset is where it was.
    """

    def __init__(
        self,
        port: int = 9092,
        *,
        data_dir: Path,
        log_path: Path | None = None,
        controller_port: int | None = None,
        distribution: KafkaDistribution | None = None,
        heap_mb: int = 512,
        java: str = "java",
    ) -> None:
        self.port = port
        self.controller_port = controller_port
        self.log_path = log_path
        self.data_dir = data_dir.resolve()
        self.distribution = distribution or KafkaDistribution.from_settings(load(Settings))
        self.heap_mb = heap_mb
        self.java = java
        self.process: subprocess.Popen | None = None

    @classmethod
    def from_settings(cls, settings: Settings, port: int, log_path: Path | None = None) -> EmbeddedBroker:
        """The launcher's broker: <data_dir>/kafka, the configured version, heap and java."""
        return cls(
            port,
            data_dir=settings.data_dir / "kafka",
            log_path=log_path,
            distribution=KafkaDistribution.from_settings(settings),
            heap_mb=settings.kafka_heap_mb,
            java=settings.kafka_java,
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kafka-logs"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def cluster_id(self) -> str | None:
        """The formatted cluster id, None before the first start."""
        meta = self.log_dir / "meta.properties"
        if not meta.is_file():
            return None
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
        return None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _write_config(self, controller_port: int) -> Path:
        # Static voters (not the dynamic quorum of `format --standalone`): the controller's address is then
        # read from this file at every start rather than recorded in the log, so its port may change.
        config = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            # one node: every internal topic has one replica, and a new group does not wait 3 s for more members
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # The log cleaner (it compacts __consumer_offsets) takes a 128 MiB dedupe buffer by default: half a
            # small heap, and test brokers with 256 MiB died at start with OutOfMemoryError. A few offsets
            # topics' keys fit in a fraction of this.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            # the pipeline creates its topics with their retention (services/core/bus.py ensure_topics);
            # a topic created by a stray producer is not a dataset topic
            "num.partitions": "1",
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in config.items()))
        return path

    def _java(self, main: str, *args: str, heap_mb: int) -> list[str]:
        return [
            self.java,
            f"-Xmx{heap_mb}m",
            f"-Xms{min(heap_mb, 128)}m",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            self.distribution.classpath,
            main,
            *args,
        ]

    def format(self, config: Path) -> None:
        """Formats the log directory once; a formatted one (meta.properties present) keeps its cluster id."""
        if self.cluster_id is not None:
            return
        command = self._java(
            STORAGE_TOOL_MAIN, "format", f"--cluster-id={new_cluster_id()}", f"--config={config}",
            "--ignore-formatted", heap_mb=128,
        )  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise BrokerStartError(f"formatting {self.log_dir} failed:\n{(result.stdout + result.stderr)[-2000:]}")
        log.info("formatted %s as KRaft cluster %s", self.log_dir, self.cluster_id)

    def _wait_previous_instance(self, timeout_s: float) -> None:
        """A broker of the same data directory that is still shutting down (its launcher was killed) holds the
        log directory's lock: wait for it rather than fail on the lock."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + timeout_s
        while _pid_is_broker(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_is_broker(pid):
            raise BrokerStartError(f"a broker (pid {pid}) still runs on {self.data_dir}; stop it first")

    def start(self, timeout_s: float = 90.0) -> EmbeddedBroker:
        self.distribution.ensure()
        self._wait_previous_instance(timeout_s=30.0)
        controller_port = self.controller_port or free_port()
        config = self._write_config(controller_port)
        self.format(config)
        log_file = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - closed once handed over
        started = time.monotonic()
        self.process = subprocess.Popen(
            with_parent_death_signal(self._java(BROKER_MAIN, str(config), heap_mb=self.heap_mb)),
            stdout=log_file if log_file is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        if log_file is not None:
            log_file.close()
        self.pid_file.write_text(f"{self.process.pid}\n")
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s, self.process)
        except BrokerStartError as exc:
            self.stop()
            raise BrokerStartError(f"Kafka broker on {self.data_dir}: {exc}; log: {self.log_path}") from exc
        log.info(
            "Apache Kafka %s pid %d on %s (cluster %s), ready in %.1f s",
            self.distribution.version, self.process.pid, self.bootstrap_servers, self.cluster_id,
            time.monotonic() - started,
        )  # fmt: skip
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: Kafka's controlled shutdown flushes and closes the logs (a clean restart skips recovery)."""
        if self.process is not None:
            stop_process(self.process, timeout_s)
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()

    def kill(self) -> None:
        """SIGKILL, as a crash would: the next start recovers the logs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pid_is_broker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return BROKER_MAIN.encode() in cmdline.split(b"\0")


def main() -> None:
    """`python -m services.core.broker`: assembles the class path (what `make install` runs)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load(Settings)
    distribution = KafkaDistribution.from_settings(settings).ensure()
    print(f"Apache Kafka {distribution.version}: {distribution.libs}")


if __name__ == "__main__":
    main()
