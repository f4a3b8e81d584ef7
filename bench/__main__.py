"""``make bench``: run every benchmark (or those named), print tables, save JSON results."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import pkgutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith("bench_"))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {available()})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    names = args.names or available()
    if len(names) > 1:
        # One process each: chDB opens one data directory per process.
        failed = [name for name in names if subprocess.run(
            [sys.executable, "-m", "bench", name, *(["--quick"] if args.quick else [])],
            check=False).returncode != 0]
        if failed:
            sys.exit(f"benchmarks failed: {', '.join(failed)}")
        return
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.time()
        result: dict[str, Any] = asyncio.run(module.main(args))
        result["benchmark"] = name
        result["wall_seconds"] = round(time.time() - started, 1)
        # A smoke run never overwrites the figures of a full one.
        out = RESULTS / f"{name}{'-quick' if args.quick else ''}.json"
        out.write_text(json.dumps(result, indent=2, default=str))
        print(f"saved {out}")


if __name__ == "__main__":
    main()
