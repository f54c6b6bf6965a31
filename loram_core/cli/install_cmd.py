"""``loram install NAME...`` / ``loram uninstall NAME...``: pip, in the environment loram itself runs in.

As ``llm install`` does: a plugin installed with the shell's ``pip`` can land in another environment than the
one whose ``loram`` runs it; ``sys.executable -m pip`` cannot miss.
"""

from __future__ import annotations

import subprocess
import sys

from loram_core.errors import LoramError


def run_pip(args: list[str]) -> int:
    """``python -m pip ARGS`` with this interpreter; pip's own output goes to the terminal. Returns its exit code."""
    return subprocess.call([sys.executable, "-m", "pip", *args])


def _pip(args: list[str], what: str) -> int:
    code = run_pip(args)
    if code:
        raise LoramError(f"pip {what} failed (exit status {code}); its message is above")
    return 0


def cmd_install(args) -> int:
    if not args.packages and not args.editable:
        raise LoramError("loram install: name at least one package (e.g. loram-plugin-wanda) or -e PATH")
    pip_args = ["install"]
    if args.upgrade:
        pip_args.append("--upgrade")
    if args.force_reinstall:
        pip_args.append("--force-reinstall")
    if args.no_cache_dir:
        pip_args.append("--no-cache-dir")
    if args.pre:
        pip_args.append("--pre")
    for path in args.editable:
        pip_args += ["--editable", path]
    return _pip(pip_args + list(args.packages), "install")


def cmd_uninstall(args) -> int:
    return _pip(["uninstall", *(["--yes"] if args.yes else []), *args.packages], "uninstall")


def add_commands(sub) -> None:
    p = sub.add_parser("install", help="install packages (plugins) into the environment loram runs in, with pip")
    p.add_argument("packages", nargs="*", metavar="NAME", help="what pip installs: loram-plugin-NAME, a path, a URL")
    p.add_argument("-U", "--upgrade", action="store_true", help="upgrade to the newest version")
    p.add_argument("-e", "--editable", action="append", default=[], metavar="PATH", help="install a local folder in editable mode")
    p.add_argument("--force-reinstall", action="store_true", help="reinstall even if up to date")
    p.add_argument("--no-cache-dir", action="store_true", help="do not use pip's cache")
    p.add_argument("--pre", action="store_true", help="include pre-release versions")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("uninstall", help="uninstall packages (plugins) from the environment loram runs in")
    p.add_argument("packages", nargs="+", metavar="NAME")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_uninstall)
