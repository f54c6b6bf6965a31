"""Helpers for testing loram and its plugins: tiny random models built from a config, no downloads."""
