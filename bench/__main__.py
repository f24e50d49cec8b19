"""``python -m bench``: run every benchmark, print one table, write bench/results.json.

A new benchmark is a module in this package with ``run(ctx) -> list[Row]``, added to MODULES.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import class_deployment, cnn, lessons, pages, playground, programs, runs, startup
from bench.common import RESULTS, Context, Row, format_table, machine_info, write_results

MODULES = {
    "lessons": lessons,
    "programs": programs,
    "pages": pages,
    "startup": startup,
    "cnn": cnn,
    "runs": runs,
    "playground": playground,
    "class_deployment": class_deployment,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "only", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(MODULES)} (all)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    parser.add_argument(
        "--no-browser", action="store_true", help="page weight by httpx simulation, not Chromium"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(MODULES)}")

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="explorer-bench-") as tmp:
        ctx = Context(tmp=Path(tmp), quick=args.quick, browser=not args.no_browser)
        for name in args.only or list(MODULES):
            started = time.perf_counter()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            rows += MODULES[name].run(ctx)
            print(f"bench: {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr)
    machine = machine_info()
    print(
        f"PyTorch Explorer bench · {machine['date']} · torch {machine['torch']} · "
        f"{machine['cpu_count']} CPUs · python {machine['python']} · ratio = app / bare"
    )
    print(format_table(rows))
    write_results(rows, machine, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
