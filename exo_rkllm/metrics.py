"""Prometheus metrics of a node: one registry per process, names shared with the dashboard and alerts.

The serving core and the HTTP layer update these; `/metrics` renders them. Names are part of the
contract with `exo_rkllm/dashboards/` and `docs/alerts.yml`: change them together.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOKEN_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1)

REQUESTS = Counter("rkllm_requests", "API requests by model, route and HTTP status",
                   ["model", "route", "status"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("rkllm_queue_depth", "Requests waiting for the NPU (not counting the running one)",
                    ["model"], registry=REGISTRY)
QUEUE_LIMIT = Gauge("rkllm_queue_limit", "Configured bound of the queue", ["model"], registry=REGISTRY)
RUNNING = Gauge("rkllm_running", "1 while a generation runs on this model's worker", ["model"], registry=REGISTRY)
TTFT = Histogram("rkllm_time_to_first_token_seconds", "Submit to first generated token",
                 ["model"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
TOKEN_LATENCY = Histogram("rkllm_token_latency_seconds", "Time between consecutive generated tokens",
                          ["model"], buckets=_TOKEN_BUCKETS, registry=REGISTRY)
TOKENS_PER_SECOND = Gauge("rkllm_tokens_per_second", "Decode rate of the last finished generation",
                          ["model"], registry=REGISTRY)
PROMPT_TOKENS = Counter("rkllm_prompt_tokens", "Prompt tokens received", ["model"], registry=REGISTRY)
PREFILLED_TOKENS = Counter("rkllm_prefilled_tokens", "Prompt tokens actually prefilled (KV reuse skips the rest)",
                           ["model"], registry=REGISTRY)
COMPLETION_TOKENS = Counter("rkllm_completion_tokens", "Tokens generated", ["model"], registry=REGISTRY)
MODEL_LOAD_SECONDS = Gauge("rkllm_model_load_seconds", "Duration of the last model load", ["model"],
                           registry=REGISTRY)
WORKER_RESTARTS = Counter("rkllm_worker_restarts", "Runtime worker processes restarted after dying",
                          ["model"], registry=REGISTRY)
OOV_TOKENS = Counter("rkllm_oov_tokens", "Generated ids outside the tokenizer's vocabulary (never shown as text)",
                     ["model"], registry=REGISTRY)
NPU_LOAD = Gauge("rkllm_npu_load_percent", "NPU core load from /sys/kernel/debug/rknpu/load", ["core"],
                 registry=REGISTRY)
FREQUENCY = Gauge("rkllm_frequency_hz", "Current frequency of the NPU, CPU clusters and DDR", ["unit"],
                  registry=REGISTRY)
SIMULATED = Gauge("rkllm_simulated", "1 when this node runs the simulated runtime (no NPU)", registry=REGISTRY)
