"""BIG-bench's JSON tasks from the ``bigbench==1.0.0`` source archive on PyPI (358 MB), read member by member.

No hub is reachable here, and the archive is a package registry's file: ``scripts/install.sh`` fetches it once into
``$LORAM_CACHE/sources`` (``python -m loram_core.data.bigbench``), checking its sha256; ``$LORAM_BIGBENCH_ARCHIVE``
names another copy. The package itself is never installed (its dependencies are heavy and not needed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Iterator

from loram_core.errors import LoramError

ARCHIVE = "bigbench-1.0.0.tar.gz"
SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
TASKS = "bigbench-1.0.0/bigbench/benchmark_tasks/"
INDEX = "https://pypi.org/simple/bigbench/"


def archive_path() -> Path:
    from loram_core.models.smollm2 import cache_root

    return Path(os.environ.get("LORAM_BIGBENCH_ARCHIVE") or cache_root() / "sources" / ARCHIVE).expanduser()


def find_archive() -> Path:
    path = archive_path()
    if not path.is_file():
        raise LoramError(f"BIG-bench's task archive is not at {path}; fetch it once with "
                         f"'python -m loram_core.data.bigbench' (scripts/install.sh does), or set LORAM_BIGBENCH_ARCHIVE")
    return path


def task_files(*folders: str) -> Iterator[tuple[str, dict]]:
    """``(subtask path, task.json)`` for every ``task.json`` under ``benchmark_tasks/<folder>/`` of each folder,
    in archive order; a folder with subtasks yields those, not its own summary file. One sequential pass over
    the archive (a gzip stream cannot seek back cheaply), however many folders."""
    found: dict[str, dict] = {}
    with tarfile.open(find_archive()) as archive:
        for member in archive:
            if member.name.startswith(TASKS) and member.name.endswith("/task.json"):
                path = member.name[len(TASKS):-len("/task.json")]
                if path.split("/")[0] in folders:
                    with archive.extractfile(member) as f:
                        found[path] = json.load(f)
    for path, task in found.items():
        if "/" not in path and any(other.startswith(path + "/") for other in found):
            continue
        yield path, task


def fetch(target: Path | None = None) -> Path:
    """Download the archive from the package index (link and sha256 from its simple page) into the cache."""
    target = target or archive_path()
    if target.is_file() and _sha256(target) == SHA256:
        return target
    index = os.environ.get("LORAM_BIGBENCH_INDEX", INDEX)
    page = urllib.request.urlopen(index, timeout=120).read().decode()
    links = re.findall(r'href="([^"]*' + re.escape(ARCHIVE) + r'[^"]*)"', page)
    if not links:
        raise LoramError(f"{index} lists no {ARCHIVE}")
    url = urllib.request.urljoin(index, links[0].split("#")[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    urllib.request.urlretrieve(url, partial)
    if _sha256(partial) != SHA256:
        partial.unlink()
        raise LoramError(f"{url} does not have the sha256 of {ARCHIVE} ({SHA256})")
    os.replace(partial, target)
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
