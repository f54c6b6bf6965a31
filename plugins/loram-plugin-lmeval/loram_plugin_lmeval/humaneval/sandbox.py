"""Running model-written programs out of process: one fresh, limited child interpreter per program.

A security boundary (docs/tasks.md): code a model generated never runs inside loram's own process. Each
program runs in ``python -I -S -B`` (no site, no user paths) with an empty environment and closed stdin, in a
throw-away working directory, in its own session and process group, under rlimits (CPU, address space, file
size, open files, processes, no core dumps), in a fresh network namespace when the kernel allows one, and
behind the audit hook of ``runner.py``, which refuses network, processes, native code and writes outside
that directory before the program starts. Everything in the group is killed when the run ends.
"""

from __future__ import annotations

import functools
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from loram_plugin_lmeval.humaneval import runner

RUNNER = Path(runner.__file__).read_text(encoding="utf-8")  # runs in the child only, as ``-c`` text
STDERR_KEEP = 4096  # bytes of the child's stderr kept (the end); the rest is read and dropped
TAIL_CHARS = 500
MAX_PROCS = 1  # RLIMIT_NPROC: no fork or thread for a non-root user; root ignores it (the hook blocks both)
CLONE_NEWNET = 0x40000000


@attrs.frozen
class Outcome:
    """How one program ended. ``reason``: passed, failed, timeout, ``killed: SIGXCPU`` (a signal's name) or
    ``blocked: <event>`` (the audit hook refused something, e.g. ``blocked: socket.connect``)."""

    passed: bool
    reason: str
    returncode: int | None
    stderr_tail: str


@functools.cache
def _unshare_net():
    """A callable that moves the calling process into a new network namespace, or None (not Linux)."""
    if hasattr(os, "unshare"):  # Python 3.12+
        return functools.partial(os.unshare, os.CLONE_NEWNET)
    try:
        import ctypes

        unshare = ctypes.CDLL(None, use_errno=True).unshare
    except (OSError, AttributeError):
        return None
    unshare.argtypes, unshare.restype = [ctypes.c_int], ctypes.c_int
    return functools.partial(unshare, CLONE_NEWNET)  # returns -1 where not permitted: ignored


def _limits(memory_mb, file_mb, max_files, cpu_s) -> tuple[tuple[int, int, int], ...]:
    """(resource, soft, hard) for the child, hard limits capped at this process's own."""
    mb, cpu_s = 1024 * 1024, int(cpu_s)
    memory_mb, file_mb, max_files = int(memory_mb), int(file_mb), int(max_files)
    wanted = (
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),  # SIGXCPU at soft, SIGKILL at hard
        (resource.RLIMIT_AS, memory_mb * mb, memory_mb * mb),
        (resource.RLIMIT_FSIZE, file_mb * mb, file_mb * mb),
        (resource.RLIMIT_NOFILE, max_files, max_files),
        (resource.RLIMIT_NPROC, MAX_PROCS, MAX_PROCS),
        (resource.RLIMIT_CORE, 0, 0),
    )
    limits = []
    for res, soft, hard in wanted:
        ceiling = resource.getrlimit(res)[1]
        if ceiling != resource.RLIM_INFINITY:
            hard = min(hard, ceiling)
        limits.append((res, min(soft, hard), hard))
    return tuple(limits)


def _preexec(limits, unshare_net) -> None:
    # runs in the child between fork and exec: no imports, no locks, nothing that allocates much
    if unshare_net is not None:
        try:
            unshare_net()  # defence in depth; the audit hook is what guarantees no network
        except OSError:
            pass
    for res, soft, hard in limits:
        resource.setrlimit(res, (soft, hard))


def _wait_exited(pid: int, timeout_s: float) -> bool:
    """Whether the child exited within ``timeout_s``; it is left unreaped, so its pid and process group id
    cannot be reused before the group is killed."""
    deadline, delay = time.monotonic() + timeout_s, 0.001
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is not None and info.si_pid:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)


def _drain(pipe, tail: list[bytes]) -> None:
    # reads the pipe to its end (then closes it), so the child never blocks on a full pipe; keeps the last bytes
    kept = b""
    with pipe:
        while chunk := os.read(pipe.fileno(), 65536):
            kept = (kept + chunk)[-STDERR_KEEP:]
    tail.append(kept)


def _outcome(timed_out: bool, returncode: int, stderr: bytes) -> Outcome:
    text = stderr.decode("utf-8", "replace")
    if timed_out:
        reason = "timeout"
    elif returncode < 0:
        names = {sig.value: sig.name for sig in signal.Signals}
        reason = "killed: " + names.get(-returncode, f"signal {-returncode}")
    elif returncode == runner.PASSED:
        reason = "passed"
    elif returncode == runner.BLOCKED:
        verdict = text.rpartition("\n" + runner.MARKER)[2].strip()
        reason = verdict if verdict.startswith("blocked: ") else "blocked: unknown"
    else:
        reason = "failed"
    return Outcome(passed=reason == "passed", reason=reason, returncode=returncode, stderr_tail=text[-TAIL_CHARS:])


def run_sandboxed(
    source: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    file_mb: int = 16,
    max_files: int = 64,
    cpu_s: int | None = None,
) -> Outcome:
    """Run ``source`` (a whole program, e.g. ``problems.program(...)``) in the sandbox; passed = it ran to
    its end. ``cpu_s`` defaults to ceil(timeout_s) + 1: a busy loop meets the wall clock (``timeout``) first,
    and the CPU limit stays a backstop."""
    if timeout_s <= 0 or memory_mb <= 0 or file_mb <= 0 or max_files <= 0 or (cpu_s is not None and cpu_s <= 0):
        raise ValueError("timeout_s, memory_mb, file_mb, max_files and cpu_s must be positive")
    cpu = cpu_s if cpu_s is not None else math.ceil(timeout_s) + 1
    limits = _limits(memory_mb, file_mb, max_files, cpu)
    preexec = functools.partial(_preexec, limits, _unshare_net())
    with tempfile.TemporaryDirectory(prefix="loram-humaneval-", ignore_cleanup_errors=True) as work:
        Path(work, "program.py").write_text(source, encoding="utf-8", errors="surrogateescape")
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", "-c", RUNNER, "program.py"],
            cwd=work,
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own session and process group, killed as a whole below
            preexec_fn=preexec,
        )
        tail: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
        reader.start()
        try:
            timed_out = not _wait_exited(proc.pid, timeout_s)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group; the leader is not reaped yet
            except (ProcessLookupError, PermissionError):
                pass
            returncode = proc.wait()
            reader.join(timeout=5)  # the pipe ends when the group is gone
    return _outcome(timed_out, returncode, tail[0] if tail else b"")


def run_many(sources: Iterable[str], *, workers: int = 2, **limits) -> list[Outcome]:
    """``run_sandboxed`` over ``sources``, ``workers`` at a time (threads only wait on children); in order."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    sources = list(sources)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(sources)))) as pool:
        return list(pool.map(lambda source: run_sandboxed(source, **limits), sources))
