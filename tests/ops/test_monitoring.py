"""Grafana dashboard and Prometheus alerts: only real metric names, rules valid and firing (promtool)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)")
METRIC_RE = re.compile(r"\b(rkllm_[a-z0-9_]+)\b")


def defined_series() -> set[str]:
    """Every series name exo_rkllm.metrics can expose (counters with _total, histograms with their parts)."""
    from prometheus_client import Counter, Gauge, Histogram

    import exo_rkllm.metrics as m

    names: set[str] = set()
    for obj in vars(m).values():
        if isinstance(obj, Counter):
            names |= {obj._name + "_total", obj._name + "_created"}
        elif isinstance(obj, Histogram):
            names |= {obj._name + s for s in ("_bucket", "_sum", "_count", "_created")}
        elif isinstance(obj, Gauge):
            names.add(obj._name)
    return names


def dashboard() -> dict:
    text = resources.files("exo_rkllm").joinpath("dashboards/grafana.json").read_text()
    return json.loads(text)


def dashboard_exprs(d: dict) -> list[str]:
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in d["templating"]["list"] if "definition" in v]
    return exprs


def test_dashboard_uses_only_defined_metrics():
    known = defined_series()
    assert "rkllm_requests_total" in known and "rkllm_time_to_first_token_seconds_bucket" in known
    used = {name for expr in dashboard_exprs(dashboard()) for name in METRIC_RE.findall(expr)}
    unknown = used - known
    assert not unknown, f"dashboard queries metrics exo_rkllm.metrics does not define: {sorted(unknown)}"


def test_dashboard_covers_every_metric():
    used = {name for expr in dashboard_exprs(dashboard()) for name in METRIC_RE.findall(expr)}
    bases = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in used}
    import exo_rkllm.metrics as m
    from prometheus_client import Counter, Gauge, Histogram
    defined = {o._name for o in vars(m).values() if isinstance(o, (Counter, Gauge, Histogram))}
    assert defined - bases == set(), f"metrics without a panel: {sorted(defined - bases)}"


def test_dashboard_structure():
    d = dashboard()
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and d["uid"] == "exo-rkllm"
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]


def test_alerts_use_only_defined_metrics():
    known = defined_series() | {"up"}
    used = set(METRIC_RE.findall(ALERTS.read_text()))
    assert used and used <= known, sorted(used - known)


@needs_promtool
def test_promtool_check_rules():
    res = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 6 rules found" in res.stdout


@needs_promtool
def test_promtool_check_rules_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(ALERTS.read_text().replace("== 0", "== == 0", 1))
    res = subprocess.run([PROMTOOL, "check", "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0


UNIT_TESTS = """
rule_files: [{alerts}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{{job="exo-rkllm", instance="b1:52415"}}'
        values: '1 1 0 0 0 0'
      - series: 'rkllm_worker_restarts_total{{instance="b1:52415", model="qwen2.5-1.5b-instruct"}}'
        values: '0 0 1 2 3 3'
      - series: 'rkllm_queue_depth{{instance="b1:52415", model="qwen2.5-1.5b-instruct"}}'
        values: '0 8 8 8 8 8 8 8 8'
      - series: 'rkllm_queue_limit{{instance="b1:52415", model="qwen2.5-1.5b-instruct"}}'
        values: '8 8 8 8 8 8 8 8 8'
    alert_rule_test:
      - eval_time: 5m
        alertname: RKLLMNodeDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: exo-rkllm, instance: "b1:52415"}}
      - eval_time: 5m
        alertname: RKLLMWorkerCrashLoop
        exp_alerts:
          - exp_labels: {{severity: critical, instance: "b1:52415", model: qwen2.5-1.5b-instruct}}
      - eval_time: 7m
        alertname: RKLLMQueueSaturated
        exp_alerts:
          - exp_labels: {{severity: warning, instance: "b1:52415", model: qwen2.5-1.5b-instruct}}
      - eval_time: 1m
        alertname: RKLLMNodeDown
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: 'rkllm_tokens_per_second{{instance="b2:52415", model="qwen2.5-1.5b-instruct"}}'
        values: '16x60 6x20'
    alert_rule_test:
      - eval_time: 50m
        alertname: RKLLMTokensPerSecondCollapse
        exp_alerts: []
      - eval_time: 75m
        alertname: RKLLMTokensPerSecondCollapse
        exp_alerts:
          - exp_labels: {{severity: warning, instance: "b2:52415", model: qwen2.5-1.5b-instruct}}
"""


def without_annotations(text: str) -> str:
    """The rules with their annotations blocks dropped (promtool compares annotations verbatim)."""
    out, skip_deeper = [], None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip_deeper is not None and (not line.strip() or indent > skip_deeper):
            continue
        skip_deeper = None
        if line.strip() == "annotations:":
            skip_deeper = indent
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@needs_promtool
def test_alerts_fire_on_the_conditions_they_name(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(without_annotations(ALERTS.read_text()))
    assert "annotations" not in rules.read_text() and rules.read_text().count("- alert:") == 6
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(UNIT_TESTS.format(alerts=json.dumps(str(rules))))
    res = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
