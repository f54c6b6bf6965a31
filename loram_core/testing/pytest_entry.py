"""The ``pytest11`` entry point ``loram``: loads ``loram_core.testing.pytest_plugin`` by its module name.

Going through ``pytest_plugins`` (not pointing the entry point at the plugin itself) lets pytest see that
``-p loram_core.testing.pytest_plugin`` already loaded it, instead of registering the module twice.
"""

pytest_plugins = ["loram_core.testing.pytest_plugin"]
