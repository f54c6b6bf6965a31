"""Nothing from a dependency reaches a run's output: bitsandbytes and `kernels` log about hub kernels at import
(offline, every run imports them through PEFT). Checked in a fresh process with the versions the lock installs."""

import json
import os
import subprocess
import sys

IMPORTS = "import peft, bitsandbytes, bitsandbytes.nn"


def stderr_of(code: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_the_hub_kernel_messages_are_there_without_the_filter_and_gone_with_it():
    # The control: the locked versions do print about hub kernels, so the second assertion is not vacuous.
    assert "kernels-community" in stderr_of(IMPORTS)
    quiet = stderr_of(f"from loram_core.cli.main import quiet_dependency_noise; quiet_dependency_noise(); {IMPORTS}")
    assert quiet == ""


def test_a_command_prints_only_its_result(tmp_path):
    # (A first use converts the packaged model; that conversion prints nothing either: tests/models/test_gguf.py.)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "loram_core.cli.main", "estimate", "--model", "smollm2-135m",
                           "--pruner", "random", "--ratio", "0.5", "--quantizer", "nf4", "--json"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["params"]["original"] == 134_515_008
