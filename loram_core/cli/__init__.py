"""The ``loram`` command line."""
