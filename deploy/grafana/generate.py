"""Writes the provisioned Grafana dashboards (deploy/grafana/dashboards/*.json) from the panels below.

    .venv/bin/python deploy/grafana/generate.py

The JSON is committed (Grafana provisions it as is); tests/deploy checks it matches this script and
that every metric its queries name is exported by the services or by Triton.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from services.core import topology

OUT = Path(__file__).with_name("dashboards")
DATASOURCE = {"type": "prometheus", "uid": "haic-prometheus"}
# The funnel: each stage's input topic, in the topology's order.
FUNNEL_TOPICS = [(stage.funnel_label, stage.input_topic) for stage in topology.STAGES]


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "refId": ref,
        "instant": instant,
        "range": not instant,
    }


def panel(title: str, targets: list[dict], kind: str = "timeseries", unit: str = "short", **extra: object) -> dict:
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        **extra,
    }


def percentiles(metric: str, by: str, selector: str = "") -> list[dict]:
    return [
        target(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{selector}[$__rate_interval])))",
            f"{{{{{by}}}}} p{int(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def layout(panels: list[dict], width: int = 12, height: int = 8) -> list[dict]:
    """Two panels a row (stat rows and full-width panels take their own widths)."""
    x = y = 0
    row_height = 0
    for number, item in enumerate(panels, start=1):
        w = item.pop("w", width)
        h = item.pop("h", height)
        if x + w > 24:
            x, y = 0, y + row_height
            row_height = 0
        item["id"] = number
        item["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        row_height = max(row_height, h)
    return panels


def dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["haic"],
        "timezone": "browser",
        "editable": False,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["haic"], "title": "HAIC", "asDropdown": False}],
        "panels": layout(panels),
    }


def service_variable() -> dict:
    return {
        "name": "service",
        "label": "service",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(haic_messages_consumed_total, service)", "refId": "service"},
        "definition": "label_values(haic_messages_consumed_total, service)",
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
    }


def pipeline() -> dict:
    funnel_stats = [
        panel(
            name.capitalize(),
            [target(f'sum(increase(haic_messages_produced_total{{topic="{topic}"}}[$__range]))', name, instant=True)],
            kind="stat",
            w=4,
            h=4,
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "graphMode": "none"},
        )
        for name, topic in FUNNEL_TOPICS
    ]
    yield_stat = panel(
        "Clip yield (accepted / candidate)",
        [
            target(
                'sum(increase(haic_messages_produced_total{topic="haic.clips.accepted.v1"}[$__range]))'
                ' / sum(increase(haic_messages_produced_total{topic="haic.clips.candidate.v1"}[$__range]))',
                "yield",
                instant=True,
            )
        ],
        kind="stat",
        unit="percentunit",
        w=4,
        h=4,
    )
    topics_regex = "|".join(topic for _, topic in FUNNEL_TOPICS)
    panels = [
        *funnel_stats,
        yield_stat,
        panel(
            "Funnel over the range (events per stage)",
            [
                target(
                    f'sum by (topic) (increase(haic_messages_produced_total{{topic=~"{topics_regex}"}}[$__range]))',
                    "{{topic}}",
                    instant=True,
                )
            ],
            kind="bargauge",
            w=12,
            options={"orientation": "horizontal", "displayMode": "gradient"},
        ),
        panel(
            "Yield per stage",
            [
                target(
                    'sum(rate(haic_messages_produced_total{topic="haic.clips.candidate.v1"}[$__rate_interval]))'
                    ' / sum(rate(haic_messages_produced_total{topic="haic.videos.v1"}[$__rate_interval]))',
                    "candidate clips per video",
                ),
                target("haic:clip_yield:ratio1h", "accepted / candidate (1 h)"),
                target(
                    'sum(rate(haic_messages_produced_total{topic="haic.captions.v1"}[$__rate_interval]))'
                    ' / sum(rate(haic_messages_produced_total{topic="haic.clips.accepted.v1"}[$__rate_interval]))',
                    "captions per accepted clip",
                ),
                target("haic_accepted_ratio", "pose accepted ratio since start ({{instance}})"),
            ],
            w=12,
        ),
        panel(
            "Rejections by reason",
            [target("stage_reason:haic_clip_rejections:rate5m", "{{stage}} {{reason}}")],
            unit="ops",
            w=24,
            options={"legend": {"displayMode": "table", "placement": "right"}},
            fieldConfig={"defaults": {"unit": "ops", "custom": {"stacking": {"mode": "normal"}}}, "overrides": []},
        ),
        panel(
            "Throughput per stage (messages consumed / s)",
            [
                target(
                    'sum by (service, topic) (rate(haic_messages_consumed_total{service=~"$service"}'
                    "[$__rate_interval]))",
                    "{{service}} ← {{topic}}",
                )
            ],
            unit="ops",
        ),
        panel(
            "Produced per topic (events / s)",
            [target("sum by (topic) (rate(haic_messages_produced_total[$__rate_interval]))", "{{topic}}")],
            unit="ops",
        ),
        panel(
            "Processing latency per stage (p50, p95, p99)",
            percentiles("haic_processing_seconds", "service", '{service=~"$service"}'),
            unit="s",
        ),
        panel("Messages in flight", [target('sum by (service) (haic_in_flight_messages{service=~"$service"})')]),
        panel(
            "Consumer lag per service (messages behind)",
            [target('sum by (service, topic) (haic_consumer_lag{service=~"$service"})', "{{service}} {{topic}}")],
        ),
        panel(
            "Dead letters and failed attempts (per s)",
            [
                target(
                    "sum by (service) (rate(haic_messages_dead_lettered_total[$__rate_interval]))",
                    "dead-lettered {{service}}",
                ),
                target("sum by (service) (rate(haic_messages_failed_total[$__rate_interval]))", "failed {{service}}"),
            ],
            unit="ops",
        ),
        panel(
            "Gateway uploads by outcome (per s)",
            [target("sum by (outcome) (rate(haic_gateway_uploads_total[$__rate_interval]))", "{{outcome}}")],
            unit="ops",
        ),
        panel(
            "Gateway request latency p95 by route",
            [
                target(
                    "histogram_quantile(0.95, sum by (route, le) "
                    "(rate(haic_gateway_request_seconds_bucket[$__rate_interval])))",
                    "{{route}}",
                ),
                target(
                    "histogram_quantile(0.95, sum by (stage, le) "
                    "(rate(haic_gateway_upload_stage_seconds_bucket[$__rate_interval])))",
                    "upload {{stage}}",
                ),
            ],
            unit="s",
        ),
        panel(
            "Services up",
            [target('up{job=~"haic-.+"}', "{{job}}", instant=True)],
            kind="stat",
            w=24,
            h=4,
            options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
        ),
    ]
    return dashboard(
        "haic-pipeline",
        "HAIC pipeline",
        "Funnel, yield, rejections, throughput, latency, lag and dead letters of the HAIC streaming pipeline",
        panels,
        [service_variable()],
    )


def models() -> dict:
    panels = [
        panel(
            "Triton request latency, pose stage view (p50, p95, p99)",
            percentiles("haic_triton_request_seconds", "model"),
            unit="s",
        ),
        panel(
            "Triton server latency per request: queue and compute (µs)",
            [
                target(
                    "sum by (model) (rate(nv_inference_queue_duration_us[$__rate_interval]))"
                    " / sum by (model) (rate(nv_inference_request_success[$__rate_interval]))",
                    "queue {{model}}",
                ),
                target(
                    "sum by (model) (rate(nv_inference_compute_infer_duration_us[$__rate_interval]))"
                    " / sum by (model) (rate(nv_inference_request_success[$__rate_interval]))",
                    "compute {{model}}",
                ),
                target(
                    "sum by (model) (rate(nv_inference_request_duration_us[$__rate_interval]))"
                    " / sum by (model) (rate(nv_inference_request_success[$__rate_interval]))",
                    "end to end {{model}}",
                ),
            ],
            unit="µs",
        ),
        panel(
            "Triton batch size: images per request (client) and per execution (server)",
            [
                target(
                    "sum by (model) (rate(haic_triton_batch_size_sum[$__rate_interval]))"
                    " / sum by (model) (rate(haic_triton_batch_size_count[$__rate_interval]))",
                    "per request {{model}}",
                ),
                target(
                    "sum by (model) (rate(nv_inference_count[$__rate_interval]))"
                    " / sum by (model) (rate(nv_inference_exec_count[$__rate_interval]))",
                    "per execution (dynamic batcher) {{model}}",
                ),
            ],
        ),
        panel(
            "Triton errors and GPU use",
            [
                target(
                    "sum by (model, code) (rate(haic_triton_errors_total[$__rate_interval]))",
                    "client {{model}} {{code}}",
                ),
                target("sum by (model) (rate(nv_inference_request_failure[$__rate_interval]))", "server {{model}}"),
                target("avg by (gpu_uuid) (nv_gpu_utilization)", "GPU {{gpu_uuid}} utilization"),
            ],
        ),
        panel(
            "Judge pass rate",
            [
                target(
                    'sum by (backend) (rate(haic_captions_total{judge="passed"}[$__rate_interval]))'
                    " / sum by (backend) (rate(haic_captions_total[$__rate_interval]))",
                    "{{backend}}",
                ),
                target("haic:judge_pass:ratio1h", "all backends (1 h)"),
            ],
            unit="percentunit",
        ),
        panel(
            "Caption latency (p50, p95, p99) and MLLM requests",
            [
                *percentiles("haic_caption_seconds", "backend"),
                target(
                    "sum by (model, outcome) (rate(haic_mllm_requests_total[$__rate_interval]))", "MLLM {{outcome}}"
                ),
            ],
            unit="s",
        ),
        panel(
            "MLLM tokens and malformed answers (per s)",
            [
                target("sum by (model, kind) (rate(haic_mllm_tokens_total[$__rate_interval]))", "{{kind}} tokens"),
                target("sum by (model) (rate(haic_mllm_malformed_answers_total[$__rate_interval]))", "malformed"),
                target("sum by (model) (haic_mllm_in_flight_requests)", "in flight"),
                *percentiles("haic_mllm_request_seconds", "model")[1:2],
            ],
        ),
        panel(
            "Frames decoded and people per clip (pose, p50)",
            [
                target(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(haic_frames_decoded_per_clip_bucket[$__rate_interval])))",
                    "frames decoded",
                ),
                target(
                    "histogram_quantile(0.5, sum by (le) (rate(haic_people_per_clip_bucket[$__rate_interval])))",
                    "people",
                ),
            ],
        ),
        panel(
            "QA items per category",
            [target("sum by (category) (increase(haic_qa_items_total[$__range]))", "{{category}}", instant=True)],
            kind="bargauge",
            options={"orientation": "horizontal"},
        ),
        panel(
            "QA items dropped by the validator, by reason (per s)",
            [target("sum by (backend, reason) (rate(haic_qa_items_dropped_total[$__rate_interval]))", "{{reason}}")],
            unit="ops",
        ),
        panel(
            "Model accuracy per category",
            [target("max by (answerer, setting, category) (haic_eval_accuracy)", "", instant=True)],
            kind="table",
            w=16,
            unit="percentunit",
            transformations=[{"id": "labelsToFields", "options": {}}],
        ),
        panel(
            "Answers by outcome (per s)",
            [
                target(
                    "sum by (answerer, outcome) (rate(haic_eval_items_total[$__rate_interval]))",
                    "{{answerer}} {{outcome}}",
                )
            ],
            w=8,
            unit="ops",
        ),
    ]
    return dashboard(
        "haic-models",
        "HAIC models: Triton, captions, QA and accuracy",
        "Triton latency, queue time and batching; judge pass rate; QA items per category; model accuracy",
        panels,
        [],
    )


DASHBOARDS = {"haic-pipeline.json": pipeline, "haic-models.json": models}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
