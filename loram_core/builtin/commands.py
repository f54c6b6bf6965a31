"""Built-in commands registered through the same ``register_commands`` hook as third parties' commands."""

from loram_core import hookimpl


@hookimpl
def register_commands(cli):
    from loram_core.bench.cli import add_commands as add_bench
    from loram_core.estimate.cli import add_command as add_estimate

    add_estimate(cli)
    add_bench(cli)
