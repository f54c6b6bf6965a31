"""Run each grid cell as ``loram run`` in its own process; finished cells are skipped, so a bench resumes.

One process per configuration keeps measurements honest (docs/architecture.md, "Measuring memory": the peak of one
configuration is not inflated by another's leftovers) and a crash in one cell from taking the others down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from loram_core import registry
from loram_core.atomic import write_json
from loram_core.bench.grid import Cell


def missing_plugins(cell: Cell) -> list[str]:
    """``kind:name`` of every plugin the cell names that is not installed."""
    wanted = [("pruner", cell.strategy.pruner), ("quantizer", cell.quantizer), ("aligner", cell.aligner)]
    return [f"{kind}:{name}" for kind, name in wanted if name and name not in registry.collect(kind)]


def cell_status(cell_dir: Path, cell: Cell, common: list[str]) -> str | None:
    """"done" when the cell's report exists and was made with these arguments."""
    meta = cell_dir / "cell.json"
    if not (cell_dir / "report.json").is_file() or not meta.is_file():
        return None
    try:
        recorded = json.loads(meta.read_text())
    except ValueError:
        return None
    return "done" if recorded.get("argv") == cell.run_args() + common else None


def share_prune(cell: Cell, cell_dir: Path, cells: list[Cell], out: Path, common: list[str]) -> str | None:
    """Hard-link the prune (and align) output of a finished cell that differs from ``cell`` only in its
    quantizer: the plan and pruned weights are the same, and `loram run` then skips those stages (their
    recorded keys match). Artifacts are only ever replaced whole, never written in place, so sharing is safe."""
    if (cell_dir / "stages" / "prune.json").is_file():
        return None
    for other in cells:
        if other == cell or (other.strategy, other.ratio, other.aligner) != (cell.strategy, cell.ratio, cell.aligner):
            continue
        src = out / "cells" / other.name
        if cell_status(src, other, common) != "done":
            continue
        (cell_dir / "stages").mkdir(parents=True, exist_ok=True)
        for folder in ("plan", "pruned"):
            shutil.rmtree(cell_dir / folder, ignore_errors=True)
            shutil.copytree(src / folder, cell_dir / folder, copy_function=os.link)
        for stage in ("align", "prune"):  # prune last: its record is what makes the copy count as done
            if (src / "stages" / f"{stage}.json").is_file():
                shutil.copy2(src / "stages" / f"{stage}.json", cell_dir / "stages" / f"{stage}.json")
        return other.name
    return None


def run_cell(cell: Cell, cell_dir: Path, common: list[str], shared_from: str | None = None) -> dict:
    cell_dir.mkdir(parents=True, exist_ok=True)
    argv = cell.run_args() + common
    write_json(cell_dir / "cell.json", {**cell.to_dict(), "argv": argv, "status": "running"})
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    cmd = [sys.executable, "-m", "loram_core.cli.main", "run", *argv, "--out", str(cell_dir), "--json", "--no-progress"]
    started = time.perf_counter()
    with open(cell_dir / "run.log", "w") as log:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    wall_s = round(time.perf_counter() - started, 1)  # the grid's time is the sum over cells, resumes included
    status = "done" if proc.returncode == 0 and (cell_dir / "report.json").is_file() else "failed"
    error = None
    if status == "failed":
        lines = (cell_dir / "run.log").read_text().strip().splitlines()
        error = lines[-1] if lines else f"exit code {proc.returncode}"
    write_json(cell_dir / "cell.json", {**cell.to_dict(), "argv": argv, "status": status, "error": error,
                                        "prune_shared_from": shared_from, "wall_s": wall_s})
    return {"status": status, "error": error, "prune_shared_from": shared_from, "wall_s": wall_s}


def run_grid(cells: list[Cell], out: Path, common: list[str], console: Console | None = None,
             progress: bool = True) -> list[dict]:
    console = console or Console(stderr=True, log_path=False)
    results = []
    with Progress(console=console, disable=not progress) as bar:
        task = bar.add_task("bench cells", total=len(cells))
        for cell in cells:
            cell_dir = out / "cells" / cell.name
            missing = missing_plugins(cell)
            if missing:
                outcome = {"status": "not installed", "error": "missing " + ", ".join(missing)}
            elif cell_status(cell_dir, cell, common):
                recorded = json.loads((cell_dir / "cell.json").read_text())
                outcome = {"status": "done", "error": None, "skipped": True, "wall_s": recorded.get("wall_s")}
            else:
                shared = share_prune(cell, cell_dir, cells, out, common)
                if progress:  # on a terminal; a pipe gets the results alone
                    console.log(f"cell {cell.name}: {cell.label}" + (f" (prune stage shared with {shared})" if shared else ""))
                outcome = run_cell(cell, cell_dir, common, shared)
            results.append({**cell.to_dict(), **outcome, "dir": str(cell_dir)})
            bar.advance(task)
    walls = [r.get("wall_s") for r in results if r["status"] == "done"]
    total = round(sum(walls), 1) if walls and None not in walls else None
    write_json(out / "bench.json", {"cells": results, "common_args": common, "wall_s_total": total})
    return results
