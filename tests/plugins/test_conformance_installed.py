"""Every installed loram plugin package passes the conformance suite, run the way a plugin author runs it:
``pytest --loram-plugin NAME --pyargs loram_core.testing.conformance.suite``."""

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from loram_test_helpers import REPO

INSTALLED = sorted(ep.name for ep in entry_points(group="loram"))


@pytest.mark.skipif(not INSTALLED, reason="no loram plugin package is installed (scripts/install.sh installs them)")
@pytest.mark.parametrize("name", INSTALLED)
def test_installed_plugin_passes_the_conformance_suite(name):
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--loram-plugin", name,
            "--pyargs", "loram_core.testing.conformance.suite"]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout.splitlines()[-1]
