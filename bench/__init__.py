"""Benchmarks: each module ``bench/bench_*.py`` has ``async def main(args) -> dict``."""
