"""Responses Crossplane would refuse for their size become a Fatal result that says why."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from crossplane.function import resource, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import fn, response_size
from tests.fixtures import deployment
from tests.world import T0

NOW = T0 + timedelta(minutes=5)


def request(replicas: int) -> fnv1.RunFunctionRequest:
    """A first call for a deployment of `replicas` (every replica is desired at once)."""
    req = fnv1.RunFunctionRequest(meta=fnv1.RequestMeta(tag="size-tag"))
    resource.update(req.observed.composite, {
        "apiVersion": "serving.rollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "big", "namespace": "ml-team"},
        "spec": deployment(replicas, ("v1",)),
    })
    return req


def run(req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    return fn.FunctionRunner(clock=lambda: NOW).run(req)


@pytest.fixture
def limit() -> Iterator[None]:
    """Restore the module's limit after a test changes it."""
    yield
    response_size.configure(response_size.CROSSPLANE_RECEIVE_LIMIT)


def fatal_message(rsp: fnv1.RunFunctionResponse) -> str:
    fatal = [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(fatal) == 1, rsp.results
    return fatal[0].message


def test_default_limit_is_grpc_go_default_receive_size() -> None:
    assert response_size.CROSSPLANE_RECEIVE_LIMIT == 4 * 1024 * 1024
    assert response_size.limit() == response_size.CROSSPLANE_RECEIVE_LIMIT


def test_a_deployment_too_large_for_crossplane_gets_a_small_fatal_that_explains() -> None:
    req = request(6000)
    # What the response would have been without the bound.
    unbounded = response.to(req)
    fn.respond(req, unbounded, NOW)
    full = unbounded.ByteSize()
    assert full > response_size.CROSSPLANE_RECEIVE_LIMIT

    rsp = run(req)
    message = fatal_message(rsp)
    assert f"{full:,} bytes" in message
    assert f"{response_size.CROSSPLANE_RECEIVE_LIMIT:,} bytes" in message
    assert "6,000 replicas" in message
    assert "split" in message
    # Nothing desired: Crossplane changes nothing, and the answer itself is tiny.
    assert not rsp.desired.resources
    assert not rsp.desired.composite.resource
    assert rsp.meta.tag == "size-tag"
    assert rsp.ByteSize() < 2048


def test_the_replica_count_it_suggests_fits() -> None:
    message = fatal_message(run(request(6000)))
    match = re.search(r"about ([\d,]+) fit", message)
    assert match, message
    fit = int(match.group(1).replace(",", ""))
    assert 3000 < fit < 6000
    ok = run(request(fit))
    assert not [r for r in ok.results if r.severity == fnv1.SEVERITY_FATAL]
    assert ok.ByteSize() <= response_size.CROSSPLANE_RECEIVE_LIMIT


def test_a_response_at_the_limit_is_sent_as_is_and_one_byte_over_is_not() -> None:
    req = request(10)
    rsp = run(req)
    size = rsp.ByteSize()
    assert response_size.bounded(req, rsp, limit_bytes=size) is rsp
    over = response_size.bounded(req, rsp, limit_bytes=size - 1)
    assert f"{size:,} bytes" in fatal_message(over)


def test_the_configured_limit_applies_to_every_call(limit: None) -> None:
    normal = run(request(10))
    assert not [r for r in normal.results if r.severity == fnv1.SEVERITY_FATAL]
    response_size.configure(normal.ByteSize() - 1)
    assert "more than the" in fatal_message(run(request(10)))
    with pytest.raises(ValueError):
        response_size.configure(0)


def test_the_estimate_that_spares_measuring_small_responses_is_close() -> None:
    """Mid-rollout (both revisions' replicas and endpoints, a long route) and fresh."""
    from tests.test_fast_paths import benchmark  # scripts/benchmark.py's realistic requests

    for req, now in ((benchmark.build_request(200), benchmark.NOW), (request(300), NOW)):
        rsp = fn.FunctionRunner(clock=lambda now=now: now).run(req)
        assert not rsp.results or rsp.results[0].severity != fnv1.SEVERITY_FATAL
        exact = rsp.ByteSize()
        assert abs(response_size.estimate(rsp) - exact) < 0.01 * exact
