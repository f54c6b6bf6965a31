"""``loram estimate`` as a built-in command plugin: commands register through the same hook as third parties'."""

from loram_core import hookimpl


@hookimpl
def register_commands(cli):
    from loram_core.estimate.cli import add_command

    add_command(cli)
