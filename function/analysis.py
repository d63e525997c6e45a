"""The SLO gate's verdict: the deploying revision's service levels against limits and the
current revision's (docs/rollout.md#the-analysis-gate).

Pure arithmetic over replicas' status.metrics, no clock but the `now` passed
in. `combine` sums one revision's usable metrics into Figures; `judge` turns
the deploying revision's Figures, the baseline's (the current revision's) and
the limits of spec.strategy.analysis into a Judgement: Pass, Fail or
Inconclusive, with a message that states the figures that decided it.

p95 figures are combined as the request-weighted mean of the replicas' p95s.
That is an approximation: the p95 of the union of the replicas' requests lies
between the smallest and the largest replica p95, and is not their mean. It
needs no histograms from the adapter and is exact when replicas are alike.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from function.observe import Metrics
from function.spec import Analysis


class Verdict(enum.Enum):
    """The analysis gate's verdict on the deploying revision (docs/rollout.md#the-analysis-gate)."""

    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


ERROR_RATE = "error rate"
TTFT_P95 = "TTFT p95"
ITL_P95 = "ITL p95"


@dataclass(frozen=True)
class Figures:
    """One revision's service levels, combined over its Serving replicas' usable metrics.

    serving: Serving replicas looked at; replicas: those whose metrics were
    usable (present, well-formed and recent). A p95 is None when no usable
    replica with requests publishes it.
    """

    revision: str
    serving: int
    replicas: int
    requests: int
    errors: int
    ttft_p95_seconds: float | None
    itl_p95_seconds: float | None

    @property
    def error_rate(self) -> float:
        """errors / requests; 0 with no requests (there can be no errors then)."""
        return self.errors / self.requests if self.requests else 0.0

    def p95(self, metric: str) -> float | None:
        """The combined p95 of `metric` (TTFT_P95 or ITL_P95); None when no replica publishes it."""
        return self.ttft_p95_seconds if metric == TTFT_P95 else self.itl_p95_seconds


def usable(metrics: Metrics | None, now: datetime, status_ttl_seconds: int) -> bool:
    """Whether metrics may be used: present and at most max(windowSeconds,
    healthPolicy.statusTTLSeconds) old.

    Example: statusTTLSeconds 120, windowSeconds 300, observedTime 10:00:00 ->
    usable until 10:05:00 inclusive; without windowSeconds, until 10:02:00.
    """
    if metrics is None or metrics.observed_time is None:
        return False
    ttl = max(metrics.window_seconds or 0, status_ttl_seconds)
    return now - metrics.observed_time <= timedelta(seconds=ttl)


def combine(revision: str, metrics: Iterable[Metrics | None], now: datetime,
            status_ttl_seconds: int) -> Figures:
    """One revision's Figures from its Serving replicas' metrics (None: a replica publishes none).

    Requests and errors are summed; each p95 is the request-weighted mean over
    the usable replicas that publish it and served requests. Example: replicas
    (1000 requests, 10 errors, TTFT p95 1.0 s) and (500 requests, 40 errors,
    TTFT p95 2.5 s) -> 1500 requests, 50 errors (3.33%), TTFT p95
    (1000 * 1.0 + 500 * 2.5) / 1500 = 1.5 s.
    """
    serving = replicas = requests = errors = 0
    ttft_sum = ttft_weight = itl_sum = itl_weight = 0.0
    for sample in metrics:
        serving += 1
        if sample is None or not usable(sample, now, status_ttl_seconds):
            continue
        replicas += 1
        requests += sample.requests
        errors += sample.errors
        if sample.requests:
            if sample.ttft_p95_seconds is not None:
                ttft_sum += sample.ttft_p95_seconds * sample.requests
                ttft_weight += sample.requests
            if sample.itl_p95_seconds is not None:
                itl_sum += sample.itl_p95_seconds * sample.requests
                itl_weight += sample.requests
    return Figures(
        revision=revision,
        serving=serving,
        replicas=replicas,
        requests=requests,
        errors=errors,
        ttft_p95_seconds=ttft_sum / ttft_weight if ttft_weight else None,
        itl_p95_seconds=itl_sum / itl_weight if itl_weight else None,
    )


@dataclass(frozen=True)
class Judgement:
    """The verdict, the message that states its figures, and the metrics that failed."""

    verdict: Verdict
    message: str
    failed: tuple[str, ...] = ()


def judge(limits: Analysis, deploying: Figures, baseline: Figures | None) -> Judgement:
    """The verdict on the deploying revision (docs/rollout.md#the-analysis-gate).

    - Inconclusive when it has no usable metrics or fewer than minRequests requests;
    - Fail when its error rate exceeds maxErrorRate, a p95 exceeds its limit, or,
      when the baseline has at least minRequests requests, its error rate or a p95
      exceeds the baseline's times maxRatioToBaseline (a baseline figure of 0
      compares against the absolute limit only);
    - Inconclusive when nothing failed but a figure needed for a comparison
      (an absolute p95 limit is set, or the baseline publishes that p95) is not
      published by the deploying revision;
    - Pass otherwise.

    Worked examples (minRequests 100, maxErrorRate 0.01, maxTTFTP95Seconds 2,
    maxRatioToBaseline 1.25; baseline v1: 3000 requests, 6 errors, TTFT p95 1.0 s):
    - v2 with 40 requests -> Inconclusive "v2 has 40 requests from 2 of 2 serving
      replicas; at least 100 are needed";
    - v2 with 1520 requests, 62 errors -> Fail "v2 error rate 4.08% over 1520
      requests > 1% (baseline 0.2%)";
    - v2 with 1520 requests, 2 errors, TTFT p95 1.5 s -> Fail "v2 TTFT p95 1.5s over
      1520 requests > 1.25 x baseline 1s (1.25s)";
    - v2 with 1520 requests, 2 errors, TTFT p95 1.1 s -> Pass.
    """
    name = deploying.revision
    if deploying.replicas == 0:
        if deploying.serving == 0:
            return Judgement(Verdict.INCONCLUSIVE, f"{name} has no serving replica to judge")
        return Judgement(Verdict.INCONCLUSIVE,
                         f"{name} has no usable metrics: none of its {deploying.serving} "
                         "serving replicas publishes recent status.metrics")
    if deploying.requests < limits.min_requests:
        return Judgement(Verdict.INCONCLUSIVE,
                         f"{name} has {deploying.requests} requests from {deploying.replicas} "
                         f"of {deploying.serving} serving replicas; at least "
                         f"{limits.min_requests} are needed")

    compared = (baseline if baseline is not None and baseline.replicas
                and baseline.requests >= limits.min_requests
                and limits.max_ratio_to_baseline is not None else None)
    failures = _error_rate_failures(limits, deploying, baseline, compared)
    missing: list[str] = []
    for metric in (TTFT_P95, ITL_P95):
        if deploying.p95(metric) is None:
            base_compared = compared.p95(metric) if compared is not None else None
            if (_p95_limit(limits, metric) is not None
                    or (base_compared is not None and base_compared > 0)):
                missing.append(metric)
        else:
            failures.extend(_p95_failures(metric, limits, deploying, baseline, compared))

    if failures:
        return Judgement(Verdict.FAIL, "; ".join(text for _, text in failures),
                         tuple(metric for metric, _ in failures))
    if missing:
        return Judgement(Verdict.INCONCLUSIVE,
                         f"{name} publishes no {' and no '.join(missing)} "
                         f"({deploying.requests} requests from {deploying.replicas} replicas)")
    return Judgement(Verdict.PASS, f"{summary(deploying)} within limits"
                     + (f" (baseline {summary(baseline)})"
                        if baseline is not None and baseline.requests else ""))


def _error_rate_failures(limits: Analysis, deploying: Figures, baseline: Figures | None,
                         compared: Figures | None) -> list[tuple[str, str]]:
    """[(ERROR_RATE, why)] when the deploying revision's error rate fails, else [].

    It fails above maxErrorRate, or above maxRatioToBaseline times the compared
    baseline's rate when that rate is above 0: maxErrorRate 0.01, ratio 1.25,
    baseline 0.005 -> a rate of 0.008 fails (0.008 > 0.00625), 0.006 passes.
    compared: the baseline when it has minRequests requests and a ratio is set.
    """
    name, rate = deploying.revision, deploying.error_rate
    ratio = limits.max_ratio_to_baseline or 1.0
    over = f"over {deploying.requests} requests"
    base_rate = baseline.error_rate if baseline is not None and baseline.requests else None
    if rate > limits.max_error_rate:
        return [(ERROR_RATE, f"{name} error rate {percent(rate)} {over} > "
                 f"{percent(limits.max_error_rate)}{aside(base_rate, percent)}")]
    if compared is not None and compared.error_rate > 0 and rate > ratio * compared.error_rate:
        return [(ERROR_RATE, f"{name} error rate {percent(rate)} {over} > {ratio:g} x "
                 f"baseline {percent(compared.error_rate)} "
                 f"({percent(ratio * compared.error_rate)})")]
    return []


def _p95_limit(limits: Analysis, metric: str) -> float | None:
    """maxTTFTP95Seconds or maxITLP95Seconds, for TTFT_P95 or ITL_P95; None when unset."""
    return limits.max_ttft_p95_seconds if metric == TTFT_P95 else limits.max_itl_p95_seconds


def _p95_failures(metric: str, limits: Analysis, deploying: Figures,
                  baseline: Figures | None, compared: Figures | None) -> list[tuple[str, str]]:
    """[(metric, why)] when the deploying revision's published p95 fails, else [].

    It fails above its absolute limit (_p95_limit), or above maxRatioToBaseline times the
    compared baseline's p95 when that is above 0: ratio 1.25, baseline TTFT p95
    1.0 s -> 1.3 s fails (1.3 > 1.25), 1.2 s passes.
    """
    value = deploying.p95(metric)
    assert value is not None
    limit = _p95_limit(limits, metric)
    name = deploying.revision
    ratio = limits.max_ratio_to_baseline or 1.0
    over = f"over {deploying.requests} requests"
    base = baseline.p95(metric) if baseline is not None else None
    base_compared = compared.p95(metric) if compared is not None else None
    if limit is not None and value > limit:
        return [(metric, f"{name} {metric} {seconds(value)} {over} > "
                 f"{seconds(limit)}{aside(base, seconds)}")]
    if base_compared is not None and base_compared > 0 and value > ratio * base_compared:
        return [(metric, f"{name} {metric} {seconds(value)} {over} > {ratio:g} x "
                 f"baseline {seconds(base_compared)} ({seconds(ratio * base_compared)})")]
    return []


def summary(figures: Figures) -> str:
    """Example: "v2 error rate 0.13% over 1520 requests, TTFT p95 1.1s, ITL p95 0.04s"."""
    parts = [f"{figures.revision} error rate {percent(figures.error_rate)} "
             f"over {figures.requests} requests"]
    for metric in (TTFT_P95, ITL_P95):
        value = figures.p95(metric)
        if value is not None:
            parts.append(f"{metric} {seconds(value)}")
    return ", ".join(parts)


def percent(rate: float) -> str:
    """0.0408 -> "4.08%", 0.01 -> "1%", 0.002 -> "0.2%"."""
    return f"{rate * 100:.3g}%"


def seconds(value: float) -> str:
    """1.375 -> "1.38s", 2.0 -> "2s", 0.04 -> "0.04s"."""
    return f"{value:.3g}s"


def aside(value: float | None, fmt: Callable[[float], str]) -> str:
    """" (baseline <value>)" when the baseline has the figure, else ""."""
    return "" if value is None else f" (baseline {fmt(value)})"
