"""Run the closed-loop reliability campaign against the function over gRPC.

    .venv/bin/python scripts/campaign.py              # seed 1: every strategy x family once
    .venv/bin/python scripts/campaign.py --seed 7 --scenarios 400 --jobs 2
    .venv/bin/python scripts/campaign.py --long       # 10 seeds x 546 scenarios
    .venv/bin/python scripts/campaign.py --seed 3 --only 72   # re-run one scenario
    .venv/bin/python scripts/campaign.py --family clock-jump --strategy bluegreen-manual

Each scenario plays one ModelDeployment from bootstrap through a rollout to a settled
state: tests/world.py stands in for Crossplane and the platform, the function runs
behind a real gRPC server on a simulated clock, and seeded faults are injected
(replica warm-up, start failures, crashes, readiness flaps, Unhealthy and stale
health, late backends and routes, lost status, late apply, clock jumps, bad input,
broken revisions). Every call is checked against the invariants of
tests/invariants.py and tests/sim_invariants.py, and goes to two servers started with
different PYTHONHASHSEED values (tests/sim_server.py) whose responses must be
byte-identical. Unless
--no-wallclock is given, a few scenarios also run against the `function` console
script in a subprocess on the wall clock.

Everything is drawn from --seed: the same seed and scenario count give the same
scenarios, faults and calls. A violation names its scenario and the command that
re-runs it alone (--only keeps the scenario's own random stream).

--long is the soak: --scenarios 546 (every strategy x family three times) for
each of ten seeds, starting at --seed: about 5,500 scenarios. The CI test
(tests/test_campaign.py) runs a bounded campaign instead: every strategy x family
once, on one fixed seed, in about 90 seconds.

Prints a summary (scenarios, calls, faults injected by kind, invariant checks by
invariant, violations) and exits 1 when any invariant was violated.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.sim import (  # noqa: E402
    ALL_STRATEGIES,
    FAMILIES,
    STRATEGIES,
    ScenarioResult,
    Summary,
    run_campaign,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    parser.add_argument("--scenarios", type=int, default=len(STRATEGIES) * len(FAMILIES),
                        help="number of scenarios (default: every strategy x family once, "
                             f"{len(STRATEGIES) * len(FAMILIES)})")
    parser.add_argument("--long", action="store_true",
                        help="soak: every strategy x family three times, for each of 10 "
                             "seeds from --seed")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes, each with its own gRPC server (default 2)")
    parser.add_argument("--only", type=int, action="append",
                        help="re-run only the scenario with this index (repeatable)")
    parser.add_argument("--strategy", action="append", choices=list(ALL_STRATEGIES),
                        help="only these strategies (repeatable); rolling-1/1, bluegreen-auto "
                             "and canary-timed (unlimited GPUs) run only when named")
    parser.add_argument("--family", action="append", choices=list(FAMILIES),
                        help="only these scenario families (repeatable)")
    parser.add_argument("--no-wallclock", action="store_true",
                        help="skip the scenarios against the console script subprocess")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="one line per scenario as results come in")
    return parser.parse_args(argv)


def describe(result: ScenarioResult) -> str:
    final = result.final
    line = (f"{result.spec.name:<42} calls {result.calls:>5}  "
            f"{result.sim_seconds / 3600:5.1f} h  -> {final.get('phase')} "
            f"current={final.get('currentRevision')} failed={final.get('failedRevision')}")
    if result.violation:
        line += f"\n    VIOLATION at call {result.violation_call}: {result.violation}"
    return line


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seeds = range(args.seed, args.seed + 10) if args.long else [args.seed]
    count = 3 * len(STRATEGIES) * len(FAMILIES) if args.long else args.scenarios
    violations = 0
    for seed in seeds:
        summary: Summary = run_campaign(
            seed, count, jobs=args.jobs, wallclock=not args.no_wallclock, only=args.only,
            strategies=args.strategy, families=args.family,
            progress=(lambda r: print(describe(r), flush=True)) if args.verbose else None)
        print(summary.render(), flush=True)
        violations += len(summary.violations)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
