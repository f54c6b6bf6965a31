"""Entry point of ``loram``: exit 0 on success, 2 on bad input (one line, no traceback), 1 on a bug."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
import traceback
import warnings

from loram_core import __version__
from loram_core.errors import LoramError


class Parser(argparse.ArgumentParser):
    """argparse, with a bad flag as one line and exit 2 like every other bad input (not the whole usage)."""

    def error(self, message: str):
        raise LoramError(f"{self.prog}: {message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    from loram_core import plugins
    from loram_core.cli import adapters_cmd, data_cmd, generate_cmd, install_cmd, plugins_cmd, stages

    parser = Parser(prog="loram", description="Train small, infer large: LoRA on a pruned model.")
    parser.add_argument("--version", action="version", version=f"loram {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    stages.add_commands(sub)
    plugins_cmd.add_commands(sub)
    install_cmd.add_commands(sub)
    adapters_cmd.add_commands(sub)
    generate_cmd.add_commands(sub)
    data_cmd.add_commands(sub)
    plugins.load_plugins().hook.register_commands(cli=sub)
    return parser


def quiet_dependency_noise() -> None:
    """Messages of dependencies that no user can act on stay out of normal output."""
    # PEFT calls a transformers property that transformers 5 deprecates: noise for our users, not theirs to fix.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    # bitsandbytes (imported by PEFT on every run, quantized or not) asks the `kernels` package for faster CPU
    # kernels from the Hugging Face Hub, which loram never reaches; both log about it at import, in words that
    # change with their versions, and the general CPU path works without them. So match what a message is about,
    # never one version's wording: every warning of `kernels` is about the hub (its loggers, children inheriting
    # the level, keep errors only), and bitsandbytes' message is dropped when its subject is those kernels.
    logging.getLogger("kernels").setLevel(logging.ERROR)
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
        lambda record: not re.search(r"\bkernels?\b|kernels-community", record.getMessage()))


# Errors of the machine, not of loram: a full disk, a folder the user may not write, a path of the wrong kind.
# Every artifact is written to a temporary sibling first, so what finished before is whole.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)
WRONG_KIND = (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG)


def environment_error(exc: OSError) -> str | None:
    """The one line for an error of the machine, or None for one that is loram's own bug."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in NO_SPACE:
        return (f"no space left on the device while writing ({exc}); finished artifacts are kept, free some space "
                f"and re-run to continue")
    if exc.errno in NOT_ALLOWED:
        return f"{exc.strerror.lower()}{where}: choose a folder you may write to"
    if exc.errno in WRONG_KIND:
        return f"{exc.strerror.lower()}{where}: a file stands where a folder is needed, or the reverse"
    return None


def main(argv: list[str] | None = None) -> int:
    quiet_dependency_noise()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("LORAM_DEBUG"))
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except LoramError as exc:
        if debug:
            traceback.print_exc()
        print(f"loram: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        message = environment_error(exc)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"loram: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loram: interrupted; finished artifacts are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
