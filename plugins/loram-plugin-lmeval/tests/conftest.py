import sys

import pytest


def pytest_configure(config):
    # As in the core's tests: installed third-party loram plugins stay out; tests register this one by hand.
    sys._called_from_test = True


@pytest.fixture(scope="session", autouse=True)
def _loram_home(tmp_path_factory):
    # As the core's tests: runs never write to the user's adapter registry.
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAM_HOME", str(tmp_path_factory.mktemp("loram-home")))
    yield
    mp.undo()


@pytest.fixture
def lmeval_registered(loram_register, monkeypatch):
    """The plugin registered with the core for one test, with the hub switched off as the issue's CI asks."""
    import loram_plugin_lmeval

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    loram_register(loram_plugin_lmeval, name="lmeval")


@pytest.fixture(scope="session")
def suite():
    """The suite's folder and manifest, built from the pinned data packages once (into the loram cache)."""
    from loram_plugin_lmeval.build import ensure_suite

    return ensure_suite()


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    from loram_core.testing.tiny import write_tiny_inputs

    return write_tiny_inputs(tmp_path_factory.mktemp("inputs"))
