"""The tables of docs/reliability.md, one row per case a test ran: what went wrong, the exit code, the one line.

A test records its case through the ``refused`` fixture (tests/conftest.py), which runs the command and checks
the answer; the row must already be in the doc, word for word, so the doc can never claim what the tests no
longer see. ``LORAM_WRITE_DOCS=1`` rewrites the rows instead (see ``REGENERATE``).
"""

from __future__ import annotations

import re
from pathlib import Path

from loram_test_helpers import REPO

DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- rows from the tests: begin -->", "<!-- rows from the tests: end -->"
# The modules that record cases, in the doc's order, with the heading of their table.
SECTIONS = {
    "test_bad_inputs": "Bad input",
    "test_settings_schema": "Values checked like flags",
    "test_nothing_lost": "Nothing lost, nothing rewritten",
    "test_clear_failures": "Damaged files, a full disk, checks before work starts",
    "test_disk_full_anywhere": "A full disk at any write",
    "test_instruction_cli": "Instruction data",
}
REGENERATE = ("LORAM_WRITE_DOCS=1 .venv/bin/python -m pytest "
              + " ".join(f"tests/cli/{m}.py" for m in SECTIONS if m.startswith(("test_bad", "test_settings", "test_nothing",
                                                                                 "test_clear")))
              + " tests/lifecycle/test_disk_full_anywhere.py tests/instruction/test_instruction_cli.py")


def normalize(message: str, basetemp: Path) -> str:
    """The parts that differ between runs: pytest's temporary folders, the random part of an atomic writer's
    temporary sibling, pids, the host name, the time."""
    message = re.sub(re.escape(str(basetemp)) + r"/[^/\s'\"]+", "<tmp>", message)
    message = re.sub(r"\.[a-z0-9_]{8}\.tmp\b", ".<random>.tmp", message)
    message = re.sub(r"pid \d+ on \S+ since \S+ \S+?(?=;)", "pid <pid> on <host> since <time>", message)
    return message


def row(case: str, code: int, message: str) -> str:
    return f"| {case} | {code} | `{message.replace('|', chr(92) + '|')}` |"


def rows_in(text: str) -> dict[str, dict[str, str]]:
    """The doc's rows by section heading, then by case."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.split(BEGIN, 1)[-1].split(END, 1)[0].splitlines():
        if line.startswith("### "):
            current = sections.setdefault(line[4:], {})
        elif current is not None and line.startswith("| ") and not line.startswith("| case |"):
            current[line.split(" | ", 1)[0][2:]] = line
    return sections


def render(sections: dict[str, dict[str, str]]) -> str:
    out = [BEGIN, ""]
    for heading in SECTIONS.values():
        if sections.get(heading):
            out += [f"### {heading}", "", "| case | exit code | what the user reads |", "|---|---|---|",
                    *sections[heading].values(), ""]
    return "\n".join([*out, END])


def write(seen: dict[str, dict[str, str]]) -> None:
    """Merge the rows the tests saw into the doc (rows of modules that did not run are kept)."""
    text = DOC.read_text()
    sections = rows_in(text)
    for heading, rows in seen.items():
        sections.setdefault(heading, {}).update(rows)
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(head + render(sections) + rest.split(END, 1)[1])
