"""Resident-memory probes from /proc (Linux). Peak memory is measured, never computed
(docs/architecture.md, "Measuring memory").

``tracemalloc`` does not see tensor storage and torch has no CPU peak counter, so the kernel's VmHWM
(high-water mark of the resident set) is the measure; writing "5" to /proc/self/clear_refs resets it. The
resident set counts the pages of memory-mapped files too (a loader's mapped shards), which the kernel can evict;
``AnonPeak`` samples RssAnon, the memory that cannot be, beside it. Every probe returns None (or False) where
/proc is unavailable instead of a made-up number.
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


def release_freed_memory() -> None:
    """Collect garbage (PEFT models hold reference cycles) and hand the C heap's free pages back to the kernel
    (glibc's ``malloc_trim``): memory one stage freed then neither stays in the next stage's baseline nor hides
    that stage's own peak by being reused. A no-op where glibc is not the allocator."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def current_anon_mb() -> float | None:
    kb = _status_kb("RssAnon")
    return None if kb is None else kb / 1024.0


class AnonPeak:
    """The peak of anonymous resident memory (RssAnon) above its value at the start, sampled every
    ``interval`` seconds by a daemon thread: the kernel keeps no high-water mark of it, so the value is a lower
    bound that misses spikes shorter than the interval. ``peak_mb`` is None where /proc is unavailable."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak_mb: float | None = None

    def __enter__(self) -> "AnonPeak":
        import threading

        self.baseline = current_anon_mb()
        self._high = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="loram-anon-peak", daemon=True)
        if self.baseline is not None:
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = current_anon_mb()
            if now is not None and now > self._high:
                self._high = now

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        now = current_anon_mb()
        if self.baseline is not None and now is not None:
            self.peak_mb = max(self._high, now) - self.baseline


class StagePeak:
    """The peak memory of one stage above the process's resident set when it started: RSS (VmHWM, reset at the
    start), anonymous RSS (sampled, ``AnonPeak``) and, on CUDA, ``max_memory_allocated`` (docs/architecture.md,
    "Measuring memory")."""

    def __enter__(self) -> "StagePeak":
        import time

        self.started = time.perf_counter()
        self.baseline = current_rss_mb()
        self.reset = reset_peak_rss()
        self.anon = AnonPeak().__enter__()
        self.cuda = _cuda()
        if self.cuda is not None:
            self.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        import time

        self.anon.__exit__(*exc)
        peak = peak_rss_mb() if self.reset else None
        self.result = {"seconds": round(time.perf_counter() - self.started, 2), "baseline_rss_mb": _round(self.baseline),
                       "baseline_anon_mb": _round(self.anon.baseline),
                       "peak_rss_mb": _round(None if peak is None or self.baseline is None else peak - self.baseline),
                       "peak_anon_mb": _round(self.anon.peak_mb)}
        if self.cuda is not None:
            self.result["cuda_max_allocated_mb"] = _round(self.cuda.max_memory_allocated() / 2**20)


def _cuda():
    import sys

    torch = sys.modules.get("torch")  # a stage that never imported torch used no CUDA memory
    return torch.cuda if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized() else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
