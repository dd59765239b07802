"""What the benchmarks time a call with."""

import time


def timed(fn):
    """(fn(), the seconds it took)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start
