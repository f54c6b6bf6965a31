"""HumanEval's problems, pass@k and the sandbox. The sandbox is a security boundary, so these tests run hostile
programs (network, processes, native code, escaping writes, runaway CPU, memory and disk) and check that each
is stopped, reported, and leaves nothing behind."""

import math
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import pytest  # noqa: E402

from loram_plugin_lmeval.humaneval.passk import pass_at_k, pass_at_k_table  # noqa: E402
from loram_plugin_lmeval.humaneval.problems import load_problems, program, truncate_completion  # noqa: E402

linux = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox's rlimits and checks need Linux")


def run(source, **limits):
    from loram_plugin_lmeval.humaneval.sandbox import run_sandboxed

    return run_sandboxed(source, **{"timeout_s": 5.0, **limits})


def rss_mb() -> float:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024  # kB


@pytest.fixture
def sandbox_tmp(tmp_path, monkeypatch):
    """The sandbox's throw-away directories go here, to check that none is left."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_problems_load_and_program_is_human_evals_check_program():
    problems = load_problems()
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0" and problems[-1].task_id == "HumanEval/163"
    assert load_problems(limit=2) == problems[:2] and "def check(candidate)" in problems[0].test
    p = problems[0]
    assert program(p, "X") == p.prompt + "X" + "\n" + p.test + "\n" + f"check({p.entry_point})\n"


def test_truncate_completion_cuts_at_the_first_stop_sequence():
    body = "    if x:\n        return x + 1\n    return 0\n"
    for rest in ("\ndef other():\n    pass\n", "\nif __name__ == '__main__':\n    main()", "\n# tests\nclass A: pass",
                 "\nprint(f(1))\n```", "\n```\n", ""):
        assert truncate_completion(body + rest) == body


def test_pass_at_k_exact_values():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert abs(pass_at_k(10, 3, 2) - (1 - math.comb(7, 2) / math.comb(10, 2))) < 1e-12
    assert pass_at_k(10, 8, 3) == 1.0  # fewer than k failures: every k-subset holds a pass
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_pass_at_k_table_mean_and_standard_error():
    table = pass_at_k_table({"A": [True, False, False, False], "B": [True, True, False, True]}, [1, 2])
    for k, (a, b) in {1: (1 / 4, 3 / 4), 2: (1 - math.comb(3, 2) / math.comb(4, 2), 1.0)}.items():
        mean = (a + b) / 2
        std = math.sqrt(((a - mean) ** 2 + (b - mean) ** 2) / (2 - 1))  # ddof=1
        assert table[k] == (pytest.approx(mean), pytest.approx(std / math.sqrt(2)))
    assert pass_at_k_table({"A": [True, False]}, [1]) == {1: (0.5, 0.0)}
    with pytest.raises(ValueError, match="B"):
        pass_at_k_table({"A": [True] * 5, "B": [False] * 2}, [1, 5])


@linux
def test_canonical_solutions_pass_and_empty_completions_fail(sandbox_tmp):
    from loram_plugin_lmeval.humaneval.sandbox import run_many

    problems = load_problems(limit=5)
    good = run_many([program(p, p.canonical_solution) for p in problems])
    assert [o.reason for o in good] == ["passed"] * 5 and all(o.passed and o.returncode == 0 for o in good)
    bad = run_many([program(p, "    pass\n") for p in problems])
    assert [o.reason for o in bad] == ["failed"] * 5 and not any(o.passed for o in bad)
    assert "AssertionError" in bad[0].stderr_tail
    assert list(sandbox_tmp.iterdir()) == []


@linux
def test_runaway_loop_times_out_and_fork_is_blocked():
    start = time.monotonic()
    assert run("while True:\n    pass\n", timeout_s=2).reason == "timeout"
    assert time.monotonic() - start < 2 + 1.5
    assert run("import os\nif os.fork() == 0:\n    while True:\n        pass\n").reason == "blocked: os.fork"


@linux
def test_unbounded_allocation_is_stopped_without_touching_this_process():
    before = rss_mb()
    out = run("x = []\nwhile True:\n    x.append(bytearray(10**7))\n", memory_mb=512, timeout_s=10)
    assert (out.reason == "failed" and "MemoryError" in out.stderr_tail) or out.reason.startswith("killed")
    assert rss_mb() - before < 100


@linux
def test_large_file_is_stopped_and_nothing_is_left_on_disk(sandbox_tmp):
    out = run("with open('big', 'wb') as f:\n    for _ in range(64):\n        f.write(b'x' * 2**20)\n", file_mb=16)
    assert out.reason == "killed: SIGXFSZ" or (out.reason == "failed" and "File too large" in out.stderr_tail)
    many = run("for i in range(100):\n    open(f'f{i}', 'w').close()\n")  # bounded in number too
    assert many.reason == "blocked: open (too many files written)"
    assert list(sandbox_tmp.iterdir()) == []


@linux
def test_network_is_blocked_and_a_real_listener_gets_no_connection():
    server = socket.create_server(("127.0.0.1", 0))  # a real listener on a free port, counting connections
    server.settimeout(0.1)
    port, accepted, got_one, stop = server.getsockname()[1], [], threading.Event(), threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
                got_one.set()
            except OSError:
                pass

    (thread := threading.Thread(target=serve, daemon=True)).start()
    try:
        for connect in ("socket.socket().connect(", "socket.create_connection("):
            assert run(f"import socket\n{connect}('127.0.0.1', {port}))").reason.startswith("blocked: socket.")
        swallowed = run(f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}))\n"
                        "except BaseException:\n    pass\n")
        assert swallowed.reason == "passed" and accepted == []  # the refusal was caught: still no connection
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # control: the listener does accept
        assert got_one.wait(timeout=2) and len(accepted) == 1
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


@linux
def test_writes_outside_the_working_directory_are_blocked_and_reads_work():
    target = Path(tempfile.gettempdir()) / f"escape-{uuid.uuid4().hex}"
    t = str(target)
    for source in (
        f"open({t!r}, 'w')",
        f"import os\nos.open({t!r}, os.O_WRONLY | os.O_CREAT)",
        f"open('../{target.name}', 'w')",
        f"import os\nos.symlink({t!r}, 'link')",
        f"import os\nos.chdir({str(target.parent)!r})\nopen({target.name!r}, 'w')",
        f"import builtins\nbuiltins.type = builtins.isinstance = lambda *a: str\nopen({t!r}, 'w')",
        f"import posixpath, os\nposixpath.normpath = os.path.normpath = lambda p: '.'\nopen({t!r}, 'w')",
        "import os\nos.open('/', os.O_RDONLY)",  # a directory descriptor (for dir_fd=) is refused too
    ):
        assert run(source).reason.startswith("blocked: "), source
        assert not target.exists()
    assert run("import json, os\nassert json.loads('[1]') == [1] and open(os.__file__).read(1)").reason == "passed"
    inside = "import os\nopen('f', 'w').write('x')\nos.mkdir('d')\nos.rename('f', 'd/g')\nassert open('d/g').read()"
    assert run(inside).reason == "passed"


@linux
@pytest.mark.parametrize("source", [
    "import os\nos.system('true')", "import subprocess\nsubprocess.run(['true'])", "import os\nos.fork()",
    "import ctypes\nctypes.CDLL(None)", "import os\nos.execv('/bin/true', ['true'])",
    "import os\nos.posix_spawn('/bin/true', ['true'], {})", "import threading\nthreading.Thread(target=print).start()",
    "import os\nos.kill(os.getppid(), 0)", "import marshal\nmarshal.loads(marshal.dumps(1))",
    "import _imp, importlib.machinery as m\n_imp.create_builtin(m.ModuleSpec('_signal', None))",
    "import sys\nsys.settrace(lambda *a: None)", "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))",
])  # fmt: skip
def test_processes_native_code_and_escape_hatches_are_blocked(source):
    assert run(source).reason.startswith("blocked: ")


@linux
def test_child_has_empty_environment_closed_stdin_and_must_run_to_its_end():
    assert run("import os\nassert 'HOME' not in os.environ and not os.environ.get('PATH')\n").reason == "passed"
    assert run("import sys\nassert sys.stdin is None or sys.stdin.read() == ''\n").reason == "passed"
    assert run("import _signal\nassert not hasattr(_signal, 'pidfd_send_signal')\n").reason == "passed"
    assert run("import sys\nsys.exit(0)").reason == "failed"


@linux
def test_run_many_keeps_order(sandbox_tmp):
    from loram_plugin_lmeval.humaneval.sandbox import run_many

    sources = ["assert 1 + 1 == 2", "import os\nos.system('true')", "while True:\n    pass",
               "import socket\nsocket.socket()", "from typing import List\nimport math, re\nassert math.gcd(4, 6) == 2",
               "raise ValueError('no')"]
    outcomes = run_many(sources, workers=2, timeout_s=2)
    assert [o.reason for o in outcomes] == [
        "passed", "blocked: os.system", "timeout", "blocked: socket.__new__", "passed", "failed"]
    assert [o.passed for o in outcomes] == [True, False, False, False, True, False]
    assert "ValueError: no" in outcomes[-1].stderr_tail
    assert list(sandbox_tmp.iterdir()) == []
