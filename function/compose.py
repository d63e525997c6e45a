"""From a Plan to the desired composed resources and XR status, as plain data.

Each function here says what one desired body looks like, as a dict;
function/writer.py writes them into the response (most replicas and endpoints
as copies of one body per revision), and tests/test_fast_paths.py composes a
whole response from these dicts the plain way to prove the writer's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from function import naming
from function.observe import Observed, format_time, to_plain
from function.planner import Backend, Plan, PlannedReplica
from function.planner.revisions import revision_content
from function.planner.types import AnalysisRecord, HeaderRule
from function.spec import Input, RouteTimeouts, Spec


@dataclass(frozen=True)
class DesiredResource:
    """One composed resource as desired: its composition key, its body, and whether
    Crossplane should count it Ready (from what was observed of it).
    """

    key: str
    body: dict[str, Any]
    ready: bool


def replica_body(plan: Plan, planned: PlannedReplica, xr_name: str, fn_input: Input,
                 labels: dict[str, str], templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A replica as desired: the Input's replica kind, its name, labels, annotations and spec."""
    return {
        "apiVersion": fn_input.replica.api_version,
        "kind": fn_input.replica.kind,
        "metadata": {
            "name": planned.name,
            "labels": labels,
            "annotations": replica_annotations(planned),
        },
        "spec": replica_spec(plan, planned, xr_name, templates),
    }


def endpoint_ready(observed: Observed, planned: PlannedReplica) -> bool:
    """Whether the replica's endpoint was observed Ready=True (False before it is observed)."""
    observed_endpoint = observed.endpoints.get((planned.revision, planned.index))
    return observed_endpoint is not None and observed_endpoint.ready


def route_resources(spec: Spec, plan: Plan, observed: Observed,
                    xr_name: str) -> list[DesiredResource]:
    """The main route and, while a revision is deploying, the preview route."""
    resources: list[DesiredResource] = []
    if spec.route is not None and plan.main_backends is not None:
        resources.append(DesiredResource(
            key=naming.ROUTE_KEY,
            body=http_route(xr_name, xr_name, spec.route.parent_refs, spec.route.hostnames,
                            route_rules(spec.route.path_prefix, plan.main_backends,
                                        plan.header_rule, spec.route.timeouts)),
            ready=observed.route is not None and observed.route.accepted,
        ))
        preview = spec.route.preview
        if preview is not None and plan.preview_backends is not None:
            resources.append(DesiredResource(
                key=naming.PREVIEW_ROUTE_KEY,
                body=http_route(naming.preview_route_name(xr_name), xr_name,
                                spec.route.parent_refs, preview.hostnames,
                                route_rules(preview.path_prefix, plan.preview_backends, None,
                                            spec.route.timeouts)),
                ready=observed.preview_route is not None and observed.preview_route.accepted,
            ))
    return resources


def replica_labels(plan: Plan, planned: PlannedReplica, xr_name: str) -> dict[str, str]:
    """A replica's labels: deployment, revision, index, and the template hash.

    The hash is the revision's; for a revision gone from spec.revisions, the one
    the replica carries already; no label when neither is known.
    """
    labels = {
        naming.LABEL_DEPLOYMENT: naming.label_value(xr_name),
        naming.LABEL_REVISION: planned.revision,
        naming.LABEL_INDEX: str(planned.index),
    }
    template_hash = plan.revisions[planned.revision].template_hash
    if template_hash is None and planned.replica is not None:
        template_hash = planned.replica.observed.template_hash
    if template_hash is not None:
        labels[naming.LABEL_TEMPLATE_HASH] = template_hash
    return labels


def replica_annotations(planned: PlannedReplica) -> dict[str, str]:
    """When the replica was first desired and, while it drains, when its drain started
    and how many seconds it lasts (docs/rollout.md#draining).
    """
    annotations = {naming.ANNOTATION_DESIRED_SINCE: format_time(planned.desired_since)}
    if planned.draining_since is not None:
        annotations[naming.ANNOTATION_DRAINING_SINCE] = format_time(planned.draining_since)
        annotations[naming.ANNOTATION_DRAIN_SECONDS] = str(planned.drain_seconds or 0)
    return annotations


def replica_spec(plan: Plan, planned: PlannedReplica, xr_name: str,
                 templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A replica's spec: deployment, revision and the revision's content.

    A revision gone from spec.revisions keeps the spec its replica was built from,
    copied as plain data (docs/rollout.md#revisions, rule 9); with none observed,
    only deployment and revision. templates holds one dict per revision for this
    call, shared by its replicas.
    """
    info = plan.revisions[planned.revision]
    if info.template is None:
        # Missing from spec.revisions: keep what the replica was built from.
        raw = planned.replica.observed.raw_spec if planned.replica is not None else None
        if isinstance(raw, Mapping):
            return to_plain(raw)
        return {"deployment": xr_name, "revision": planned.revision}
    if planned.revision not in templates:
        templates[planned.revision] = {
            "deployment": xr_name,
            "revision": planned.revision,
            **revision_content(info.template),
        }
    return templates[planned.revision]


def endpoint_body(plan: Plan, planned: PlannedReplica, labels: dict[str, str],
                  fn_input: Input) -> dict[str, Any]:
    """An endpoint as desired: the replica it fronts, its revision, the engine port, and
    the replica's status.address.url (omitted while the replica publishes none).
    """
    spec: dict[str, Any] = {
        "replica": planned.name,
        "revision": planned.revision,
        "port": plan.revisions[planned.revision].port,
    }
    url = planned.replica.observed.url if planned.replica is not None else None
    if url:
        spec["url"] = url
    return {
        "apiVersion": fn_input.endpoint.api_version,
        "kind": fn_input.endpoint.kind,
        "metadata": {"name": planned.name, "labels": labels},
        "spec": spec,
    }


def http_route(name: str, xr_name: str, parent_refs: tuple[dict[str, Any], ...],
               hostnames: tuple[str, ...], rules: list[dict[str, Any]]) -> dict[str, Any]:
    """An HTTPRoute named `name`, labelled with its deployment `xr_name`, with these rules.

    hostnames is omitted when empty (the route then matches the parents' hostnames).
    """
    spec: dict[str, Any] = {"parentRefs": [dict(ref) for ref in parent_refs], "rules": rules}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "labels": {naming.LABEL_DEPLOYMENT: naming.label_value(xr_name)},
        },
        "spec": spec,
    }


def route_rules(path_prefix: str, backends: list[Backend], header_rule: HeaderRule | None,
                timeouts: RouteTimeouts | None) -> list[dict[str, Any]]:
    """A route's rules: one PathPrefix rule to `backends` and, with a header rule that has
    backends, a second rule matching the same prefix and the header exactly.

    spec.route.timeouts is copied to every rule.
    """
    rules = [route_rule(path_prefix, backends, timeouts)]
    if header_rule is not None and header_rule.backends:
        rule = route_rule(path_prefix, header_rule.backends, timeouts)
        rule["matches"][0]["headers"] = [
            {"type": "Exact", "name": header_rule.name, "value": header_rule.value}]
        rules.append(rule)
    return rules


def route_rule(path_prefix: str, backends: list[Backend],
               timeouts: RouteTimeouts | None) -> dict[str, Any]:
    """One HTTPRoute rule: a PathPrefix match, a backendRef per backend (the key is
    omitted when there are none) and the fields of spec.route.timeouts that are set.
    """
    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": path_prefix}}]}
    if backends:
        rule["backendRefs"] = [
            {"name": b.name, "port": b.port, "weight": b.weight} for b in backends
        ]
    if timeouts is not None:
        values = {"request": timeouts.request, "backendRequest": timeouts.backend_request}
        rule["timeouts"] = {k: v for k, v in values.items() if v is not None}
    return rule


def status(plan: Plan) -> dict[str, Any]:
    """The XR's status as written: phase, the revision registers that are set, the
    replica counts, one row per revision, the strategy's own fields (status.canary)
    and status.analysis (docs/rollout.md#status-and-conditions).
    """
    out: dict[str, Any] = {"phase": plan.phase}
    optional = {
        "currentRevision": plan.current_revision,
        "deployingRevision": plan.deploying_revision,
        "failedRevision": plan.failed_revision,
        "rolloutStrategy": plan.rollout_strategy,
        "rolloutStartTime": format_time(plan.rollout_start_time)
        if plan.rollout_start_time else None,
        "lastProgressTime": format_time(plan.last_progress_time)
        if plan.last_progress_time else None,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    out["replicas"] = {
        "desired": plan.counts.desired,
        "total": plan.counts.total,
        "ready": plan.counts.ready,
        "available": plan.counts.available,
        "updated": plan.counts.updated,
        "unschedulable": plan.counts.unschedulable,
    }
    out["revisions"] = [
        {"name": row.name, "replicas": row.replicas, "available": row.available,
         "trafficWeight": row.traffic_weight}
        for row in plan.rows
    ]
    out.update(plan.extra_status)
    if plan.analysis is not None:
        out["analysis"] = analysis_status(plan.analysis)
    return out


def analysis_status(record: AnalysisRecord) -> dict[str, Any]:
    """status.analysis; failingSince only while the gate fails.

    docs/rollout.md#the-analysis-gate
    """
    out: dict[str, Any] = {"verdict": record.verdict, "message": record.message}
    if record.failing_since is not None:
        out["failingSince"] = format_time(record.failing_since)
    if record.evaluated_time is not None:
        out["evaluatedTime"] = format_time(record.evaluated_time)
    return out
