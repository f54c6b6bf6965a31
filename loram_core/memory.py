"""Resident-memory probes from /proc (Linux). Peak memory is measured, never computed
(docs/architecture.md, "Measuring memory").

``tracemalloc`` does not see tensor storage and torch has no CPU peak counter, so the kernel's VmHWM
(high-water mark of the resident set) is the measure; writing "5" to /proc/self/clear_refs resets it.
Every probe returns None (or False) where /proc is unavailable instead of a made-up number.
"""

from __future__ import annotations


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # "VmRSS:   123456 kB"
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS; True when the kernel accepted it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def peak_rss_mb() -> float | None:
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024.0


class StagePeak:
    """The peak memory of one stage above the process's resident set when it started: RSS (VmHWM, reset at the
    start) and, on CUDA, ``max_memory_allocated`` (docs/architecture.md, "Measuring memory")."""

    def __enter__(self) -> "StagePeak":
        import time

        self.started = time.perf_counter()
        self.baseline = current_rss_mb()
        self.reset = reset_peak_rss()
        self.cuda = _cuda()
        if self.cuda is not None:
            self.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        import time

        peak = peak_rss_mb() if self.reset else None
        self.result = {"seconds": round(time.perf_counter() - self.started, 2), "baseline_rss_mb": _round(self.baseline),
                       "peak_rss_mb": _round(None if peak is None or self.baseline is None else peak - self.baseline)}
        if self.cuda is not None:
            self.result["cuda_max_allocated_mb"] = _round(self.cuda.max_memory_allocated() / 2**20)


def _cuda():
    import sys

    torch = sys.modules.get("torch")  # a stage that never imported torch used no CUDA memory
    return torch.cuda if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized() else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
