"""End-to-end throughput of the whole local stack on a batch of real videos (issue 13, item 4).

    .venv/bin/python bench/throughput.py [--videos 300] [--pose-workers 1,2] [--json OUT]

Starts the stack as `haic up` does (haic_tools/launcher.py: the Apache Kafka broker, Triton for pose, every
worker, the gateway) in a temporary data directory on free ports, uploads a batch of real videos from a
small thread pool through the gateway's HTTP API (clients/sdk.py), waits until every video has settled,
and prints:

- videos and clips per hour, end to end (first upload to the last video settled);
- busy time per worker process: the growth of its haic_processing_seconds_sum over the run, and its
  share of the wall time (each pose worker apart when there are several);
- where the pipeline waits: each stage's consumer lag (haic_consumer_lag, sampled every second) over the
  run, and the pose stage's idle seconds while videos were still unsettled;
- the wall time against the CPU the stack used divided by the cores (utime + stime of every child's
  process tree, from /proc/<pid>/stat): 1.0 means the cores never waited;
- each process's resident memory (VmRSS) at the start, the middle and the end of the batch;
- all of it once per pose-worker count (`--pose-workers 1,2`: the same batch with two pose workers in
  the consumer group, HAIC_POSE_WORKERS).

Inputs: the shared videos (../shared/videos and its corpus/) and, up to --videos, distinct variants of
them made with PyAV (a crop, a scale, a quality, a length each; seeded, so the same every time) into
<cache-dir> (default .haic/bench-cache/throughput). Every variant is new content, so the gateway's
content-hash dedup keeps them apart. Each is uploaded with its source's labelled description.

The machine is shared: the report states the CPU that other programs used during each run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from clients.ingest import ingest  # noqa: E402
from clients.sdk import HaicClient  # noqa: E402
from haic_tools.launcher import LocalStack, StackPorts, pose_worker_names  # noqa: E402
from services.core.settings import Settings  # noqa: E402
from services.pose.triton_process import process_tree  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "videos"
DEFAULT_CACHE = REPO_ROOT / ".haic" / "bench-cache" / "throughput"
API_KEY = "bench-throughput-key"
VARIANT_VERSION = 1  # bump when make_variant changes: the cache is keyed by it
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIN_SHORT_SIDE = 360  # the metadata filter's default: variants of sources above it stay above it


# --- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    path: Path
    description: str
    width: int
    height: int
    duration_s: float


@dataclass(frozen=True)
class Variant:
    """One re-encoding of a source: a crop (fractions of the frame), a scale, an x264 CRF, a length cap."""

    source: Source
    index: int
    crop: tuple[float, float, float, float]  # left, top, width, height as fractions
    scale: float
    crf: int
    max_s: float

    @property
    def name(self) -> str:
        return f"{self.source.path.stem}.v{VARIANT_VERSION}.{self.index:03d}.mp4"


def shared_sources() -> list[Source]:
    """Every labelled shared video, with the description it is labelled with."""
    found: list[Source] = []
    for folder in (SHARED, SHARED / "corpus"):
        labels = json.loads((folder / "labels.json").read_text())
        for name, label in sorted(labels.items()):
            if name.startswith("_"):
                continue
            path = folder / name
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                duration = float(container.duration or 0) / av.time_base
                found.append(
                    Source(
                        path, label["description"], stream.codec_context.width, stream.codec_context.height, duration
                    )
                )
    return found


def plan_variants(sources: list[Source], count: int) -> list[Variant]:
    """`count` variants, round robin over the sources; each one's parameters come from its own seed."""
    variants: list[Variant] = []
    for i in range(count):
        source = sources[i % len(sources)]
        index = i // len(sources)
        rng = random.Random(f"{source.path.name}/{index}")
        short = min(source.width, source.height)
        # Keep the short side above the metadata filter's bar when the source is above it: a crawl's
        # videos mostly pass it, and the stages after it are what the bench is for.
        least = MIN_SHORT_SIDE / short if short >= MIN_SHORT_SIDE else 0.6
        keep = rng.uniform(max(least, 0.8), 1.0) if least < 1.0 else 1.0
        cw = rng.uniform(max(least, 0.8), 1.0)
        ch = keep if source.height <= source.width else cw
        cw = cw if source.height <= source.width else keep
        crop = (rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch), cw, ch)
        crop_short = min(source.width * cw, source.height * ch)
        scale = rng.uniform(max(MIN_SHORT_SIDE / crop_short, 0.5), 1.0) if crop_short > MIN_SHORT_SIDE else 1.0
        # Long sources are cut to 20-40 s: encoding stays cheap and the long-scene rule still sees them.
        max_s = rng.uniform(20.0, 40.0)
        variants.append(Variant(source, index, crop, min(scale, 1.0), rng.randint(20, 32), max_s))
    return variants


def make_variant(variant: Variant, target: Path) -> None:
    """Decodes the source, crops and scales each frame, and encodes H.264 (yuv420p) with the frames'
    own timestamps (GIFs and VFR sources keep their timing)."""
    src = variant.source
    left, top, cw, ch = variant.crop
    x0, y0 = int(src.width * left), int(src.height * top)
    w, h = int(src.width * cw), int(src.height * ch)
    out_w, out_h = max(2, int(w * variant.scale) // 2 * 2), max(2, int(h * variant.scale) // 2 * 2)
    tmp = target.with_suffix(".part")
    with av.open(str(src.path)) as inp, av.open(str(tmp), "w", format="mp4") as out:
        stream_in = inp.streams.video[0]
        stream_in.thread_type = "AUTO"
        rate = stream_in.average_rate or stream_in.guessed_rate or Fraction(25)
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"crf": str(variant.crf), "preset": "veryfast"}
        out.metadata["comment"] = variant.name  # belt and braces: the bytes differ even for a no-op crop
        last_pts = -1
        for frame in inp.decode(stream_in):
            t = frame.time if frame.time is not None else (last_pts + 1) / 1000
            if t > variant.max_s:
                break
            pts = round(t * 1000)
            if pts <= last_pts:
                continue
            image = frame.to_ndarray(format="rgb24")[y0 : y0 + h, x0 : x0 + w]
            new = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(out_w, out_h, format="yuv420p")
            new.pts, new.time_base = pts, Fraction(1, 1000)
            last_pts = pts
            for packet in stream.encode(new):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(target)


def prepare_inputs(count: int, cache: Path) -> list[tuple[Path, str]]:
    """The shared videos themselves, then variants until `count`: (path, description)."""
    sources = shared_sources()
    inputs = [(s.path, s.description) for s in sources[:count]]
    variants = plan_variants(sources, max(0, count - len(sources)))
    cache.mkdir(parents=True, exist_ok=True)
    made = 0
    started = time.monotonic()
    for variant in variants:
        target = cache / variant.name
        if not target.exists():
            make_variant(variant, target)
            made += 1
            if made % 10 == 0:
                print(f"  made {made} variants ({time.monotonic() - started:.0f} s)", flush=True)
        inputs.append((target, variant.source.description))
    if made:
        print(f"made {made} new variants in {time.monotonic() - started:.0f} s under {cache}", flush=True)
    return inputs


# --- measurements ----------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_busy_s() -> float:
    """CPU seconds every program on the machine spent since boot (user, nice, system, irq, softirq, steal)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class UnitCpu:
    """CPU seconds of a unit's process tree; processes that come and go are remembered by (pid, start)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], float] = {}

    def update(self, root_pid: int) -> None:
        for process in process_tree(root_pid):
            cpu = proc_cpu_s(process.pid)
            if cpu:
                self.seen[(process.pid, process.start)] = cpu

    @property
    def total_s(self) -> float:
        return sum(self.seen.values())


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The few series the bench reads, by a plain line scan (the full parser costs CPU the stack needs)."""
    wanted = ("haic_processing_seconds_sum", "haic_processing_seconds_count", "haic_consumer_lag", "haic_in_flight")
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        name, _, rest = line.partition("{")
        labels_text, _, value = rest.rpartition("} ")
        labels = {}
        for part in labels_text.split('",'):
            key, _, val = part.partition('="')
            labels[key.strip()] = val.rstrip('"')
        out[name].append((labels, float(value)))
    return out


@dataclass
class Sample:
    t: float
    lag: dict[str, float]  # "service topic" -> lag summed over the partitions this process holds
    in_flight: dict[str, float]  # process -> messages in flight
    busy_s: dict[str, float]  # process -> processing seconds so far


@dataclass
class RunResult:
    pose_workers: int
    submitted: int
    distinct: int
    wall_s: float
    upload_s: float
    settled: int
    clips: int
    accepted_clips: int
    statuses: dict[str, int]
    busy_s: dict[str, float]
    messages: dict[str, int]
    cpu_s: dict[str, float]
    bench_cpu_s: float
    others_cpu_s: float
    rss_steps: list[tuple[int, dict[str, float]]]
    rss_mib: dict[str, list[float]]
    samples: list[Sample] = field(default_factory=list)
    pose_idle_unsettled_s: dict[str, float] = field(default_factory=dict)


class Sampler(threading.Thread):
    """Every `interval_s`: each worker's /metrics (lag, in-flight, processing seconds) and the stack's CPU."""

    def __init__(self, stack: LocalStack, interval_s: float) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.stack = stack
        self.interval_s = interval_s
        self.endpoints = {
            name: f"http://127.0.0.1:{ports.metrics}/metrics"
            for name, ports in stack.ports.services.items()
            if ports.metrics and name in stack.services
        }
        self.endpoints["gateway"] = f"{stack.gateway_url}/metrics"
        self.samples: list[Sample] = []
        self.cpu: dict[str, UnitCpu] = defaultdict(UnitCpu)
        self.t0 = time.monotonic()
        self._done = threading.Event()
        self._http = httpx.Client(timeout=5)

    def roots(self) -> dict[str, int]:
        pids = {name: unit.process.pid for name, unit in self.stack.services.items() if unit.process is not None}
        if self.stack.broker is not None and self.stack.broker.process is not None:
            pids["broker"] = self.stack.broker.process.pid
        if self.stack.triton is not None and self.stack.triton.process is not None:
            pids["triton"] = self.stack.triton.process.pid
        return pids

    def rss(self) -> dict[str, float]:
        """MiB per unit, its whole process tree; Triton's server process (where onnxruntime holds the models)
        also on its own as "triton-main" (the tree's sum counts the shared-memory regions once per stub)."""
        roots = self.roots()
        found = {name: sum(proc_rss_mib(p.pid) for p in process_tree(pid)) for name, pid in roots.items()}
        if "triton" in roots:
            found["triton-main"] = proc_rss_mib(roots["triton"])
        return found

    def update_cpu(self) -> None:
        for name, pid in self.roots().items():
            self.cpu[name].update(pid)

    def scrape(self) -> Sample:
        lag: dict[str, float] = defaultdict(float)
        in_flight: dict[str, float] = {}
        busy: dict[str, float] = {}
        for process, url in self.endpoints.items():
            try:
                series = parse_metrics(self._http.get(url).text)
            except httpx.HTTPError:
                continue
            for labels, value in series["haic_consumer_lag"]:
                lag[f"{labels['service']} {labels['topic']}"] += value
            in_flight[process] = sum(v for _, v in series["haic_in_flight_messages"])
            busy[process] = sum(v for _, v in series["haic_processing_seconds_sum"])
        return Sample(time.monotonic() - self.t0, dict(lag), in_flight, busy)

    def message_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for process, url in self.endpoints.items():
            series = parse_metrics(self._http.get(url).text)
            counts[process] = int(sum(v for _, v in series["haic_processing_seconds_count"]))
        return counts

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            self.samples.append(self.scrape())
            self.update_cpu()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def close(self) -> None:
        self._http.close()


def run_once(inputs: list[tuple[Path, str]], pose_workers: int, args: argparse.Namespace) -> RunResult:
    data_dir = Path(tempfile.mkdtemp(prefix="haic-throughput-"))
    settings = Settings(data_dir=data_dir / "haic", api_keys=[API_KEY], pose_workers=pose_workers)
    print(f"\n=== {len(inputs)} videos, {pose_workers} pose worker(s); data {data_dir} ===", flush=True)
    started = time.monotonic()
    with LocalStack(settings, StackPorts.free()) as stack, HaicClient(stack.gateway_url, API_KEY) as client:
        print(f"stack up in {time.monotonic() - started:.0f} s", flush=True)
        time.sleep(args.settle_s)  # the workers' group joins and first metadata fetches are not the batch's
        sampler = Sampler(stack, args.sample_s)
        sampler.update_cpu()
        first = sampler.scrape()
        rss_start = sampler.rss()
        cpu_start = {name: cpu.total_s for name, cpu in sampler.cpu.items()}
        bench_cpu0 = proc_cpu_s(os.getpid())
        machine0 = machine_busy_s()
        sampler.t0 = t0 = time.monotonic()
        sampler.start()

        # The batch goes in as a user's would: `haic ingest` on a manifest (clients/ingest.py), with its bounded
        # concurrency and its backpressure on the stages' backlog (--max-lag).
        manifest = data_dir / "batch.jsonl"
        manifest.write_text(
            "".join(
                json.dumps({"path": str(path), "description": description, "id": f"row-{i}"}) + "\n"
                for i, (path, description) in enumerate(inputs)
            )
        )
        outcome = ingest(
            client,
            str(manifest),
            state_dir=data_dir / "ingest",
            batch="throughput",
            concurrency=args.submitters,
            max_lag=args.max_lag,
            progress=False,
        )
        upload_s = time.monotonic() - t0
        journal = [json.loads(line) for line in outcome.journal.read_text().splitlines()]
        ids = {entry["video_id"] for entry in journal}
        refused = outcome.counts["rejected"]
        print(
            f"ingested {len(inputs)} ({len(ids)} distinct, {refused} refused) in {upload_s:.0f} s, "
            f"held back {outcome.held_s:.0f} s by the backlog limit",
            flush=True,
        )

        rss_middle: dict[str, float] = {}
        rss_steps: list[tuple[int, dict[str, float]]] = [(0, rss_start)]  # at each tenth of the batch settled
        settled: dict[str, dict] = {}
        deadline = t0 + args.timeout_s
        while True:
            page_offset, done_now = 0, {}
            while True:
                page = client.videos(limit=100, offset=page_offset)
                done_now.update({v["video_id"]: v for v in page["items"] if v["settled"] and v["video_id"] in ids})
                page_offset += len(page["items"])
                if page_offset >= page["total"] or not page["items"]:
                    break
            settled = done_now
            if len(settled) * 10 >= (len(rss_steps)) * len(ids):
                rss_steps.append((len(settled), sampler.rss()))
            if not rss_middle and len(settled) >= len(ids) / 2:
                rss_middle = rss_steps[-1][1]
            if len(settled) >= len(ids):
                break
            if time.monotonic() > deadline:
                print(f"timeout: {len(ids) - len(settled)} videos unsettled after {args.timeout_s:.0f} s")
                break
            time.sleep(1.0)
        wall_s = time.monotonic() - t0
        sampler.stop()
        sampler.update_cpu()
        last = sampler.scrape()
        rss_end = sampler.rss()
        messages = sampler.message_counts()
        sampler.close()
        bench_cpu = proc_cpu_s(os.getpid()) - bench_cpu0
        machine = machine_busy_s() - machine0
        cpu = {name: unit.total_s - cpu_start.get(name, 0.0) for name, unit in sampler.cpu.items()}

        details = [client.video(video_id) for video_id in settled]
        clips = sum(len(d["clips"]) for d in details)
        accepted = sum(1 for d in details for c in d["clips"] if c["verdict"] == "accepted")
        statuses: dict[str, int] = defaultdict(int)
        for d in details:
            statuses[d["status"]] += 1
        busy = {p: last.busy_s.get(p, 0.0) - first.busy_s.get(p, 0.0) for p in sampler.endpoints}
        base_counts = {p: 0 for p in sampler.endpoints}  # the counts before the batch are startup's: none
        idle = pose_idle_while_unsettled(sampler.samples, pose_worker_names(pose_workers))
        result = RunResult(
            pose_workers=pose_workers,
            submitted=len(inputs),
            distinct=len(ids),
            wall_s=wall_s,
            upload_s=upload_s,
            settled=len(settled),
            clips=clips,
            accepted_clips=accepted,
            statuses=dict(statuses),
            busy_s=busy,
            messages={p: messages.get(p, 0) - base_counts[p] for p in sampler.endpoints},
            cpu_s=cpu,
            bench_cpu_s=bench_cpu,
            others_cpu_s=max(0.0, machine - sum(cpu.values()) - bench_cpu),
            rss_steps=rss_steps,
            rss_mib={name: [rss_start.get(name, 0), rss_middle.get(name, 0), rss_end.get(name, 0)] for name in rss_end},
            samples=sampler.samples,
            pose_idle_unsettled_s=idle,
        )
    return result


def pose_idle_while_unsettled(samples: list[Sample], pose_processes: list[str]) -> dict[str, float]:
    """Seconds each pose worker had nothing in flight while the batch was still running (every sample
    is taken before the last video settled): time the stage waited on what comes before it."""
    idle: dict[str, float] = {}
    for process in pose_processes:
        quiet = [s for s in samples if s.in_flight.get(process, 0) == 0]
        step = statistics.median([b.t - a.t for a, b in itertools.pairwise(samples)] or [1.0])
        idle[process] = len(quiet) * step
    return idle


# --- report ----------------------------------------------------------------------------------------

COMPUTE_UNITS = ("gateway", "filter", "triton", "captioner", "qagen", "scoring")


def is_compute(name: str) -> bool:
    return name in COMPUTE_UNITS or name.startswith("pose")


def report(result: RunResult, cores: int) -> list[str]:
    lines: list[str] = []
    hours = result.wall_s / 3600
    lines.append(
        f"pose workers {result.pose_workers}: {result.settled}/{result.distinct} videos settled in "
        f"{result.wall_s:.0f} s (uploads took {result.upload_s:.0f} s): {result.settled / hours:.0f} videos/h, "
        f"{result.clips / hours:.0f} clips/h ({result.clips} clips, {result.accepted_clips} accepted; "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.statuses.items()))
        + ")"
    )
    lines.append("  busy per worker process (sum of haic_processing_seconds over the run):")
    for process, busy in sorted(result.busy_s.items()):
        lines.append(
            f"    {process:<10} {busy:7.1f} s busy, {100 * busy / result.wall_s:5.1f}% of wall, "
            f"{result.messages.get(process, 0)} messages"
        )
    for process, idle in result.pose_idle_unsettled_s.items():
        lines.append(f"  {process} idle (nothing in flight, batch unfinished): {idle:.0f} s of {result.wall_s:.0f} s")
    lines.append("  consumer lag per stage (messages; at 0%, 10% ... 100% of the run; max, mean):")
    keys = sorted({k for s in result.samples for k in s.lag})
    for key in keys:
        series = [s.lag.get(key, 0.0) for s in result.samples]
        if not series or max(series) == 0:
            continue
        marks = [series[min(len(series) - 1, int(i * (len(series) - 1) / 10))] for i in range(11)]
        lines.append(
            f"    {key:<42} " + " ".join(f"{m:4.0f}" for m in marks) + f"  max {max(series):.0f}, "
            f"mean {statistics.fmean(series):.1f}"
        )
    compute = sum(v for k, v in result.cpu_s.items() if is_compute(k))
    everything = sum(result.cpu_s.values())
    lines.append(
        "  CPU seconds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(result.cpu_s.items(), key=lambda kv: -kv[1]))
        + f"; bench client {result.bench_cpu_s:.0f}; other programs on the machine {result.others_cpu_s:.0f}"
    )
    lines.append(
        f"  wall / (stages' CPU / {cores} cores) = {result.wall_s:.0f} / ({compute:.0f} / {cores}) = "
        f"{result.wall_s / (compute / cores):.2f}; with the broker and the bench client: "
        f"{result.wall_s / ((everything + result.bench_cpu_s) / cores):.2f}; with every program on the machine: "
        f"{result.wall_s / ((everything + result.bench_cpu_s + result.others_cpu_s) / cores):.2f}"
    )
    left = cores - result.others_cpu_s / result.wall_s
    lines.append(
        f"  other programs held {result.others_cpu_s / result.wall_s:.2f} of the {cores} cores: against the "
        f"{left:.2f} left, wall / (stages' CPU / cores left) = {result.wall_s / (compute / left):.2f}, "
        f"with the broker and the bench client {result.wall_s / ((everything + result.bench_cpu_s) / left):.2f}"
    )
    per_video = (everything + result.bench_cpu_s) / max(result.settled, 1)
    pose_cpu = sum(v for k, v in result.cpu_s.items() if k.startswith(("pose", "triton")))
    lines.append(
        f"  stack CPU per video {per_video:.2f} s (pose stage with Triton {pose_cpu / max(result.settled, 1):.2f} s): "
        f"{3600 * cores / per_video:.0f} videos/h if the {cores} cores were the stack's alone and never waited"
    )
    lines.append("  VmRSS MiB at start / middle / end (and at each tenth of the batch settled):")
    for name, (a, b, c) in sorted(result.rss_mib.items()):
        steps = " ".join(f"{rss.get(name, 0):.0f}" for _, rss in result.rss_steps)
        lines.append(f"    {name:<11} {a:7.0f} {b:7.0f} {c:7.0f}  ({c - a:+5.0f})  [{steps}]")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=300, help="videos in the batch (shared videos, then variants)")
    parser.add_argument(
        "--pose-workers", default="1,2", help="pose-worker counts to run the batch with, comma separated"
    )
    parser.add_argument("--submitters", type=int, default=4, help="concurrent uploads (haic ingest --concurrency)")
    parser.add_argument(
        "--max-lag",
        type=int,
        default=50,
        help="haic ingest --max-lag: uploads wait while the backlog is over it",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the variants are kept")
    parser.add_argument("--sample-s", type=float, default=1.0, help="metrics sampling interval")
    parser.add_argument("--settle-s", type=float, default=5.0, help="wait after the stack is up, before uploading")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="give up waiting for the batch after this")
    parser.add_argument("--prepare-only", action="store_true", help="make the variants and exit")
    parser.add_argument("--json", type=Path, help="write every figure and the sampled series here")
    args = parser.parse_args()

    inputs = prepare_inputs(args.videos, args.cache_dir)
    if args.prepare_only:
        return 0
    cores = os.cpu_count() or 1
    results = [run_once(inputs, int(n), args) for n in args.pose_workers.split(",")]
    print(f"\n# Throughput: {len(inputs)} videos, {cores} cores")
    for result in results:
        print("\n".join(report(result, cores)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps([result.__dict__ for result in results], default=lambda o: o.__dict__, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
