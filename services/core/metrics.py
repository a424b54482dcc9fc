"""Prometheus metrics shared by every service; each service serves them on its own /metrics port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

MESSAGES_CONSUMED = Counter("haic_messages_consumed_total", "Messages taken from a topic", ["service", "topic"])
MESSAGES_PRODUCED = Counter("haic_messages_produced_total", "Messages produced to a topic", ["service", "topic"])
MESSAGES_FAILED = Counter(
    "haic_messages_failed_total", "Failed processing attempts (retried or dead-lettered)", ["service", "topic"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "haic_messages_dead_lettered_total", "Messages sent to the dead-letter topic", ["service", "topic"]
)
PROCESSING_SECONDS = Histogram(
    "haic_processing_seconds",
    "Time to process one message, outputs included",
    ["service", "topic"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
IN_FLIGHT = Gauge("haic_in_flight_messages", "Messages being processed now", ["service"])
CONSUMER_LAG = Gauge("haic_consumer_lag", "Messages behind the partition end", ["service", "topic", "partition"])
CLIP_VERDICTS = Counter(
    "haic_clip_verdicts_total", "Clip outcomes by stage and reason", ["service", "stage", "verdict", "reason"]
)


def start_metrics_server(port: int) -> None:
    """Serves /metrics on the port; 0 leaves it off (tests that run several workers in one process)."""
    if port:
        start_http_server(port)


# --- pose stage ---
FRAMES_DECODED = Histogram(
    "haic_frames_decoded_per_clip",
    "Video frames decoded to analyse one clip (seeking skips the rest)",
    ["service"],
    buckets=(4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
PEOPLE_PER_CLIP = Histogram(
    "haic_people_per_clip",
    "Most people seen in one sampled frame of a clip",
    ["service"],
    buckets=(0, 1, 2, 3, 5, 8, 13),
)
ACCEPTED_RATIO = Gauge("haic_accepted_ratio", "Accepted clips / analysed clips since the service started", ["service"])

# --- captioner ---
CAPTIONS = Counter("haic_captions_total", "Captions produced, by backend and judge verdict", ["backend", "judge"])
CAPTION_SECONDS = Histogram(
    "haic_caption_seconds",
    "Time to caption and judge one clip",
    ["backend"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
MLLM_REQUESTS = Counter(
    "haic_mllm_requests_total",
    "MLLM chat-completion requests by outcome: answered, unavailable (after retries), rejected (4xx)",
    ["model", "outcome"],
)
MLLM_MALFORMED = Counter("haic_mllm_malformed_answers_total", "MLLM answers that did not parse", ["model"])
MLLM_TOKENS = Counter("haic_mllm_tokens_total", "Tokens billed by the MLLM endpoint", ["model", "kind"])
MLLM_REQUEST_SECONDS = Histogram(
    "haic_mllm_request_seconds",
    "Latency of one answered MLLM request, retries included",
    ["model"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
MLLM_IN_FLIGHT = Gauge("haic_mllm_in_flight_requests", "MLLM requests in flight", ["model"])

# --- QA generator and scoring ---
QA_ITEMS = Counter("haic_qa_items_total", "QA items generated, by category and backend", ["category", "backend"])
QA_ITEMS_DROPPED = Counter(
    "haic_qa_items_dropped_total", "Generated items the validator refused, by backend and reason", ["backend", "reason"]
)
EVAL_ITEMS = Counter(
    "haic_eval_items_total",
    "QA items answered, by answerer and outcome (correct, wrong, refused)",
    ["answerer", "outcome"],
)
EVAL_ACCURACY = Gauge(
    "haic_eval_accuracy",
    "Accuracy of an answerer on its latest QA set, per category; category 'average' is HAIC's mean of categories",
    ["answerer", "setting", "category"],
)
