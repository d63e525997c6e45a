"""Keep every response within what Crossplane accepts from a function.

Crossplane's function client sets no receive limit of its own, so gRPC-Go's
default of 4 MiB applies to each RunFunctionResponse. A larger response is
refused by Crossplane's side as a transport error ("received message larger
than max") that names neither the deployment's size nor a remedy, and nothing
of the response is applied. A response over the limit is therefore replaced,
before it is sent, by a small one holding a single Fatal result that says how
large the response was, what the limit is, about how many replicas fit, and
what to do.
"""

from __future__ import annotations

from collections import Counter

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

# gRPC-Go's default maximum receive message size, which Crossplane's function
# client keeps.
CROSSPLANE_RECEIVE_LIMIT = 4 * 1024 * 1024

_limit = CROSSPLANE_RECEIVE_LIMIT


def configure(limit_bytes: int) -> None:
    """Set the largest response sent (for a Crossplane built with a larger receive limit)."""
    global _limit
    if limit_bytes <= 0:
        raise ValueError("the response size limit must be positive")
    _limit = limit_bytes


def limit() -> int:
    """The largest response, in bytes, the function sends (--max-response-bytes)."""
    return _limit


def bounded(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse,
            limit_bytes: int | None = None) -> fnv1.RunFunctionResponse:
    """rsp if Crossplane accepts its size, else a Fatal response explaining why not.

    Serialising a large response just to measure it costs about as much as
    sending it (20 ms of a 125 ms call at 1000 replicas), so the exact size is
    computed only when a cheap estimate (`estimate`) comes near the limit.
    """
    cap = _limit if limit_bytes is None else limit_bytes
    if estimate(rsp) * ESTIMATE_MARGIN + ESTIMATE_SLACK < cap:
        return rsp
    size = rsp.ByteSize()
    if size <= cap:
        return rsp
    return too_large(req, rsp, size, cap)


# The estimate may miss per-resource differences within a group (names,
# indices, drain annotations: tens of bytes each); the margin and slack cover
# them many times over.
ESTIMATE_MARGIN = 1.25
ESTIMATE_SLACK = 64 * 1024


def estimate(rsp: fnv1.RunFunctionResponse) -> int:
    """The response's size, from one sample per group of alike desired resources.

    Desired resources are grouped by their key less its last dash-separated
    part (``replica-v2-17`` -> ``replica-v2``): the replicas, or endpoints, of
    one revision are copies of one template but for names, indices and
    annotations. Each group counts as its size times its first member's size;
    everything else in the response (the XR, results, conditions, context) is
    measured exactly, and is small.
    """
    resources = rsp.desired.resources
    keys = list(resources)
    groups = Counter(key.rpartition("-")[0] for key in keys)
    first: dict[str, str] = {}
    for key in keys:
        first.setdefault(key.rpartition("-")[0], key)
        if len(first) == len(groups):
            break
    total = rsp.desired.composite.ByteSize() + rsp.context.ByteSize() + rsp.meta.ByteSize()
    total += sum(r.ByteSize() for r in rsp.results) + sum(c.ByteSize() for c in rsp.conditions)
    for group, count in groups.items():
        sample = first[group]
        # The map entry's key and framing: a few bytes more than the value.
        total += count * (resources[sample].ByteSize() + len(sample) + 8)
    return total


def too_large(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse, size: int,
              cap: int) -> fnv1.RunFunctionResponse:
    """The Fatal response for a response of `size` bytes over `cap`.

    It copies neither desired state nor context from the request, so it stays
    small whatever the request held.
    """
    replicas = sum(1 for name in rsp.desired.resources if name.startswith("replica-"))
    if replicas:
        fit = max(0, cap * replicas // size)
        estimate = (f" The response held {replicas:,} replicas; about {fit:,} fit within the "
                    "limit, so keep spec.replicas (plus surge) below that or split the model "
                    "across several ModelDeployments, each with its own route.")
    else:
        estimate = " Reduce the number of replicas or split the model across ModelDeployments."
    message = (
        f"the desired state for this deployment is {size:,} bytes, more than the {cap:,} bytes "
        "Crossplane accepts in one function response (gRPC's default 4 MiB receive limit in "
        "Crossplane's function client); nothing was changed." + estimate
    )
    out = fnv1.RunFunctionResponse(meta=fnv1.ResponseMeta(tag=req.meta.tag))
    out.meta.ttl.CopyFrom(rsp.meta.ttl)
    out.results.append(fnv1.Result(severity=fnv1.SEVERITY_FATAL, message=message))
    return out
