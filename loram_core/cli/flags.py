"""The run flags shared by ``loram run`` and the single-stage commands, derived from ``RunSettings``' fields.

One field, one flag: ``batch_size`` is ``--batch-size``; a field's metadata (``loram_core/fields.py``) gives
its help, choices and, where the name differs, its flag (``--no-merge``, ``--pruner-opt``). Flags not given
stay out of the namespace, so a recipe and ``run.json`` show through (defaults <- run.json <- recipe <- flags).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import attrs

from loram_core.errors import LoramError
from loram_core.lifecycle.rundir import RunDir
from loram_core.lifecycle.settings import RunSettings, load_recipe, make_settings

S = argparse.SUPPRESS
PARSERS = {"int": int, "float": float}


def flag_name(field: attrs.Attribute) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _help(field: attrs.Attribute) -> str:
    text = field.metadata["help"]
    default = RunSettings.default(field.name)
    if field.metadata["kind"] in ("options", "tables", "bool") or default is None:
        return text
    shown = ",".join(default) if isinstance(default, tuple) else default
    return f"{text} (default {shown})"


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", metavar="FILE.toml", help="TOML recipe; flags override it")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in attrs.fields(RunSettings):
        meta = field.metadata
        group = groups.get(meta["group"]) or groups.setdefault(meta["group"], p.add_argument_group(meta["group"]))
        add_setting_flag(group, field.name)


def add_setting_flag(p, name: str, default: Any = S) -> None:
    """The flag of one RunSettings field, for a command that takes a few settings (``loram estimate``).
    ``default`` SUPPRESS: an absent flag leaves the attribute unset, so a recipe or run.json decides."""
    field = attrs.fields_dict(RunSettings)[name]
    meta = field.metadata
    kwargs: dict[str, Any] = {"dest": field.name, "default": default, "help": _help(field)}
    if meta["kind"] == "bool":
        kwargs["action"] = "store_false" if RunSettings.default(field.name) else "store_true"
    else:
        kwargs.update(type=PARSERS.get(meta["kind"], str), metavar=meta["metavar"], choices=meta["choices"])
        if meta["kind"] in ("options", "tables"):
            kwargs["action"] = "append"
    p.add_argument(flag_name(field), **kwargs)


def _option_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_options(items: list[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``: KEY=VALUE from the command line, typed like TOML."""
    opts = {}
    for item in items:
        if "=" not in item:
            raise LoramError(f"{flag} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k.strip()] = _option_value(v.strip())
    return opts


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags; a recipe's value and a flag's go through the same field converter."""
    fields = attrs.fields_dict(RunSettings)
    values = {k: v for k, v in vars(args).items() if k in fields}
    for name, value in values.items():
        if fields[name].metadata["kind"] == "options":
            values[name] = parse_options(value, flag_name(fields[name]))
    return values


def resolve_settings(args: argparse.Namespace, run_dir: Path | None, *, inherit: bool) -> RunSettings:
    """Defaults <- RUN_DIR/run.json (stage commands) <- recipe <- flags."""
    values: dict[str, Any] = {}
    if inherit and run_dir is not None and RunDir(run_dir).run_json.is_file():
        values.update(RunDir(run_dir).read_settings())
    if getattr(args, "recipe", None):
        values.update(load_recipe(args.recipe))
    values.update(flag_values(args))
    return make_settings(values, source="run settings")
