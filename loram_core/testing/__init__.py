"""Helpers for testing loram and its plugins, nothing downloaded.

- ``tiny``: tiny random Llama-family models and a character tokenizer, built in code.
- ``conformance``: the contracts every pruner, quantizer, aligner and recoverer must keep, as check functions.
- ``pytest_plugin``: ``pytest --loram-plugin NAME`` runs those checks as tests (entry point ``pytest11``).
"""
