"""The SLO gate's verdict (docs/rollout.md#the-analysis-gate) and the replica metrics it reads
(section 1.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crossplane.function import resource

from function.analysis import Figures, Verdict, combine, judge, usable
from function.observe import Metrics, read_metrics, read_replica
from function.spec import Analysis

NOW = datetime(2026, 11, 22, 10, 5, 0, tzinfo=UTC)
TTL = 120  # healthPolicy.statusTTLSeconds


def metrics(requests: int, errors: int = 0, ttft: float | None = None,
            itl: float | None = None, age: float = 10, window: int | None = 60) -> Metrics:
    return Metrics(window_seconds=window, observed_time=NOW - timedelta(seconds=age),
                   requests=requests, errors=errors, ttft_p95_seconds=ttft, itl_p95_seconds=itl)


def figures(revision: str, *samples: Metrics | None) -> Figures:
    return combine(revision, samples, NOW, TTL)


LIMITS = Analysis(min_requests=100, max_error_rate=0.01, max_ttft_p95_seconds=2.0,
                  max_itl_p95_seconds=0.1, max_ratio_to_baseline=1.25)
GOOD_BASELINE = figures("v1", metrics(1000, 2, ttft=1.0, itl=0.04),
                        metrics(1000, 2, ttft=1.0, itl=0.04))  # 0.2% errors


# (case, limits, deploying replicas' metrics, baseline, verdict, message fragments, failed)
TABLE: list[tuple[str, Analysis, list[Metrics | None], Figures | None, Verdict,
                  list[str], tuple[str, ...]]] = [
    ("too few requests", LIMITS, [metrics(30, 0, 1.0, 0.04), metrics(10, 5, 9.0, 0.04)],
     GOOD_BASELINE, Verdict.INCONCLUSIVE,
     ["v2 has 40 requests from 2 of 2 serving replicas", "at least 100"], ()),
    ("no metrics at all", LIMITS, [None, None], GOOD_BASELINE, Verdict.INCONCLUSIVE,
     ["v2 has no usable metrics", "2 serving replicas"], ()),
    ("no serving replica", LIMITS, [], GOOD_BASELINE, Verdict.INCONCLUSIVE,
     ["no serving replica"], ()),
    ("stale metrics are not used", LIMITS,
     [metrics(5000, 2500, 9.0, 1.0, age=121, window=60), metrics(50, 0, 1.0, 0.04)],
     GOOD_BASELINE, Verdict.INCONCLUSIVE, ["50 requests from 1 of 2"], ()),
    ("a long window keeps metrics usable", LIMITS,
     [metrics(500, 0, 1.0, 0.04, age=250, window=300)], GOOD_BASELINE, Verdict.PASS, [], ()),
    ("a missing figure with a limit on it", LIMITS, [metrics(500, 1, ttft=1.0)],
     GOOD_BASELINE, Verdict.INCONCLUSIVE, ["v2 publishes no ITL p95"], ()),
    ("a missing figure nothing compares is not needed",
     Analysis(max_error_rate=0.01), [metrics(500, 1)], GOOD_BASELINE, Verdict.PASS, [], ()),
    ("a missing figure does not hide a failure", LIMITS, [metrics(500, 50, ttft=1.0)],
     GOOD_BASELINE, Verdict.FAIL, ["v2 error rate 10% over 500 requests > 1% (baseline 0.2%)"],
     ("error rate",)),
    ("absolute error rate", LIMITS, [metrics(1520, 62, 1.0, 0.04)], GOOD_BASELINE,
     Verdict.FAIL, ["v2 error rate 4.08% over 1520 requests > 1% (baseline 0.2%)"],
     ("error rate",)),
    ("absolute TTFT", LIMITS, [metrics(1000, 0, 2.5, 0.04)], None, Verdict.FAIL,
     ["v2 TTFT p95 2.5s over 1000 requests > 2s"], ("TTFT p95",)),
    ("absolute ITL", LIMITS, [metrics(1000, 0, 1.0, 0.2)], None, Verdict.FAIL,
     ["v2 ITL p95 0.2s over 1000 requests > 0.1s"], ("ITL p95",)),
    ("at the limits passes", LIMITS, [metrics(1000, 10, 2.0, 0.1)], None,
     Verdict.PASS, ["v2 error rate 1% over 1000 requests, TTFT p95 2s, ITL p95 0.1s"], ()),
    ("at the baseline ratio passes", LIMITS, [metrics(1000, 2, 1.25, 0.05)], GOOD_BASELINE,
     Verdict.PASS, ["TTFT p95 1.25s"], ()),
    ("two failures, both stated", LIMITS, [metrics(1000, 50, 3.0, 0.04)], None, Verdict.FAIL,
     ["error rate 5%", "TTFT p95 3s"], ("error rate", "TTFT p95")),
    ("baseline ratio on TTFT", LIMITS, [metrics(1000, 2, 1.5, 0.04)], GOOD_BASELINE,
     Verdict.FAIL, ["v2 TTFT p95 1.5s over 1000 requests > 1.25 x baseline 1s (1.25s)"],
     ("TTFT p95",)),
    ("baseline ratio on the error rate", LIMITS, [metrics(1000, 5, 1.0, 0.04)], GOOD_BASELINE,
     Verdict.FAIL, ["v2 error rate 0.5% over 1000 requests > 1.25 x baseline 0.2% (0.25%)"],
     ("error rate",)),
    ("baseline with too few requests is not compared", LIMITS, [metrics(1000, 5, 1.5, 0.04)],
     figures("v1", metrics(60, 0, 0.5, 0.02)), Verdict.PASS, [], ()),
    ("no ratio set: the baseline is only quoted", Analysis(max_ttft_p95_seconds=2.0),
     [metrics(1000, 2, 1.9)], GOOD_BASELINE, Verdict.PASS, ["(baseline v1 error rate 0.2%"], ()),
    ("baseline error rate 0 compares against maxErrorRate only", LIMITS,
     [metrics(1000, 5, 1.0, 0.04)], figures("v1", metrics(2000, 0, 1.0, 0.04)),
     Verdict.PASS, [], ()),
    ("baseline error rate 0 and over maxErrorRate", LIMITS, [metrics(1000, 20, 1.0, 0.04)],
     figures("v1", metrics(2000, 0, 1.0, 0.04)), Verdict.FAIL,
     ["v2 error rate 2% over 1000 requests > 1% (baseline 0%)"], ("error rate",)),
    ("a baseline p95 the deploying revision does not publish", Analysis(max_ratio_to_baseline=2),
     [metrics(1000, 0)], GOOD_BASELINE, Verdict.INCONCLUSIVE, ["v2 publishes no TTFT p95"], ()),
    ("one bad replica among good ones: errors", LIMITS,
     [metrics(500, 0, 1.0, 0.04), metrics(500, 0, 1.0, 0.04), metrics(500, 0, 1.0, 0.04),
      metrics(500, 100, 1.0, 0.04)], GOOD_BASELINE, Verdict.FAIL,
     ["v2 error rate 5% over 2000 requests > 1%"], ("error rate",)),
    ("one bad replica among good ones: TTFT, request-weighted", LIMITS,
     [metrics(600, 0, 1.0, 0.04), metrics(600, 0, 1.0, 0.04), metrics(600, 0, 1.0, 0.04),
      metrics(600, 0, 5.0, 0.04)], GOOD_BASELINE, Verdict.FAIL,
     ["v2 TTFT p95 2s over 2400 requests > 1.25 x baseline 1s (1.25s)"], ("TTFT p95",)),
    ("a replica without traffic does not dilute the p95", LIMITS,
     [metrics(1000, 0, 2.2, 0.04), metrics(0, 0, 0.1, 0.01)], None, Verdict.FAIL,
     ["TTFT p95 2.2s over 1000 requests > 2s"], ("TTFT p95",)),
    ("minRequests 0 with no traffic and no latency limits", Analysis(min_requests=0),
     [metrics(0, 0)], None, Verdict.PASS, ["v2 error rate 0% over 0 requests"], ()),
    ("good", LIMITS, [metrics(800, 1, 1.1, 0.05), metrics(720, 1, 1.1, 0.05)], GOOD_BASELINE,
     Verdict.PASS, ["v2 error rate 0.132% over 1520 requests, TTFT p95 1.1s, ITL p95 0.05s "
                    "within limits (baseline v1 error rate 0.2% over 2000 requests"], ()),
]


@pytest.mark.parametrize(("limits", "deploying", "baseline", "verdict", "fragments", "failed"),
                         [case[1:] for case in TABLE], ids=[case[0] for case in TABLE])
def test_verdict(limits, deploying, baseline, verdict, fragments, failed):
    judgement = judge(limits, figures("v2", *deploying), baseline)
    assert judgement.verdict is verdict, judgement.message
    for fragment in fragments:
        assert fragment in judgement.message
    assert judgement.failed == failed


def test_p95s_combine_as_the_request_weighted_mean():
    combined = figures("v2", metrics(1000, 10, ttft=1.0), metrics(500, 40, ttft=2.5, itl=0.1))
    assert (combined.requests, combined.errors, combined.replicas) == (1500, 50, 2)
    assert combined.ttft_p95_seconds == pytest.approx(1.5)
    assert combined.itl_p95_seconds == pytest.approx(0.1)  # only the one that publishes it
    assert combined.error_rate == pytest.approx(50 / 1500)


def test_metrics_are_usable_up_to_the_longer_of_window_and_status_ttl():
    assert usable(metrics(1, age=120, window=60), NOW, TTL)
    assert not usable(metrics(1, age=121, window=60), NOW, TTL)
    assert usable(metrics(1, age=300, window=300), NOW, TTL)
    assert not usable(metrics(1, age=301, window=300), NOW, TTL)
    assert usable(metrics(1, age=120, window=None), NOW, TTL)
    assert not usable(None, NOW, TTL)


# --- reading status.metrics --------------------------------------------------------------


def replica_body(metrics_value: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "qwen-v2-0", "creationTimestamp": "2026-11-22T10:00:00Z"},
        "spec": {"revision": "v2"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": "2026-11-22T10:01:00Z"}],
            "metrics": metrics_value,
        },
    }


GOOD = {"windowSeconds": 60, "observedTime": "2026-11-22T10:04:30Z", "requests": 1520,
        "errors": 62, "ttftP95Seconds": 1.8, "itlP95Seconds": 0.045}


def read_both(body: dict[str, Any]) -> Metrics | None:
    """status.metrics read from a Struct (fast path) and from a dict; both must agree."""
    from_struct = read_replica("replica-v2-0", "v2", 0, resource.dict_to_struct(body))
    from_dict = read_replica("replica-v2-0", "v2", 0, body)
    read = read_metrics(from_struct.raw_metrics)
    assert read == read_metrics(from_dict.raw_metrics)
    assert from_struct.is_ready and not from_struct.malformed and not from_dict.malformed
    return read


def test_metrics_are_read_from_struct_and_dict_alike():
    read = read_both(replica_body(GOOD))
    assert read == Metrics(window_seconds=60, observed_time=datetime(2026, 11, 22, 10, 4, 30,
                                                                     tzinfo=UTC),
                           requests=1520, errors=62, ttft_p95_seconds=1.8, itl_p95_seconds=0.045)


def test_p95s_and_window_are_optional():
    body = {k: v for k, v in GOOD.items() if k in ("observedTime", "requests", "errors")}
    read = read_both(replica_body(body))
    assert read is not None and read.window_seconds is None and read.ttft_p95_seconds is None


@pytest.mark.parametrize(("field", "value"), [
    ("requests", None), ("requests", -1), ("requests", 1.5), ("requests", "1520"),
    ("requests", True), ("errors", None), ("errors", 2000), ("errors", -1),
    ("observedTime", None), ("observedTime", "yesterday"), ("observedTime", 5),
    ("windowSeconds", -60), ("windowSeconds", "60"), ("windowSeconds", 0.5),
    ("ttftP95Seconds", -1.0), ("ttftP95Seconds", "fast"), ("ttftP95Seconds", False),
    ("itlP95Seconds", float("inf")), ("itlP95Seconds", float("nan")), ("itlP95Seconds", [1]),
])
def test_malformed_metrics_are_unusable_and_harm_nothing_else(field, value):
    body = dict(GOOD)
    if value is None:
        del body[field]
    else:
        body[field] = value
    assert read_both(replica_body(body)) is None


@pytest.mark.parametrize("value", [{}, [], "metrics", 3, None])
def test_metrics_of_the_wrong_shape_are_unusable(value):
    assert read_both(replica_body(value)) is None
