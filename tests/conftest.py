import sys


def pytest_configure(config):
    # Keeps installed third-party loram plugins out of test runs (see loram_core.plugins).
    sys._called_from_test = True
