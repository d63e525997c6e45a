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
    return _limit


def bounded(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse,
            limit_bytes: int | None = None) -> fnv1.RunFunctionResponse:
    """rsp if Crossplane accepts its size, else a Fatal response explaining why not.

    The size is computed once (ByteSize serialises nothing it keeps; at the
    limit it costs about a millisecond).
    """
    cap = _limit if limit_bytes is None else limit_bytes
    size = rsp.ByteSize()
    if size <= cap:
        return rsp
    return too_large(req, rsp, size, cap)


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
