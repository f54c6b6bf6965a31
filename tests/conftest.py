import sys

import pytest


def pytest_configure(config):
    # Keeps installed third-party loram plugins out of test runs (see loram_core.plugins).
    sys._called_from_test = True


@pytest.fixture(scope="session", autouse=True)
def _loram_home(tmp_path_factory):
    # Session scope, so module-scoped fixtures that run `loram run` never write to the user's adapter registry.
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAM_HOME", str(tmp_path_factory.mktemp("loram-home")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny GQA model folder and a small text file, shared by one test module: (model, data)."""
    from loram_core.testing.tiny import write_tiny_inputs

    return write_tiny_inputs(tmp_path_factory.mktemp("inputs"))
