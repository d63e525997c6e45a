"""python -m devplatform: run the example serving platform against the cluster in $KUBECONFIG."""

from __future__ import annotations

import argparse
import logging

from lightkube import Client

from devplatform.controller import Controller
from devplatform.model import Settings


def main() -> None:
    defaults = Settings()
    p = argparse.ArgumentParser(
        prog="python -m devplatform",
        description="Plays the ModelReplica, ModelEndpoint and Gateway controllers of a "
                    "serving platform through their status subresources, with no GPUs.")
    p.add_argument("--gpus", type=int, default=defaults.gpus,
                   help="GPUs in the pool; replicas past it report Scheduled=False")
    p.add_argument("--warmup-seconds", type=float, default=defaults.warmup_seconds,
                   help="time from scheduling to Ready (a ModelDeployment may override it "
                        "with the devplatform.rollout.dev/warmup-seconds annotation)")
    p.add_argument("--endpoint-delay-seconds", type=float,
                   default=defaults.endpoint_delay_seconds,
                   help="time from an endpoint's creation to its published backend")
    p.add_argument("--rps", type=float, default=defaults.requests_per_second,
                   help="requests per second each route carries, split by backendRef weight")
    p.add_argument("--probe-mode", choices=["interval", "on-change"],
                   default=defaults.probe_mode,
                   help="interval: refresh status.health.lastProbeTime after every probe; "
                        "on-change: publish health changes, refresh only every "
                        "--heartbeat-seconds")
    p.add_argument("--heartbeat-seconds", type=float, default=defaults.heartbeat_seconds)
    p.add_argument("--no-metrics", action="store_true", help="do not publish status.metrics")
    p.add_argument("--metrics-window-seconds", type=int, default=defaults.metrics_window_seconds,
                   help="status.metrics covers this window and is refreshed once per window")
    p.add_argument("--tick-seconds", type=float, default=0.5, help="time between passes")
    p.add_argument("--stop-after", type=float, default=None,
                   help="stop after this many seconds (default: run until stopped)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "httpx2", "httpcore"):  # one line per request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings(
        gpus=args.gpus, warmup_seconds=args.warmup_seconds,
        endpoint_delay_seconds=args.endpoint_delay_seconds,
        requests_per_second=args.rps, probe_mode=args.probe_mode,
        heartbeat_seconds=args.heartbeat_seconds, metrics=not args.no_metrics,
        metrics_window_seconds=args.metrics_window_seconds)
    logging.getLogger("devplatform").info("serving platform started: %s", settings)
    Controller(Client(field_manager="devplatform"), settings).run(args.tick_seconds,
                                                                  args.stop_after)


if __name__ == "__main__":
    main()
