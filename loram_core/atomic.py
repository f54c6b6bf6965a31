"""Atomic artifact writes: a crash mid-write never leaves a half-written file or folder in a RUN_DIR."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _remove_stale(path: Path) -> None:
    """Temporary siblings left by a process that was killed mid-write (kill -9 skips every cleanup)."""
    for stale in path.parent.glob(f".{path.name}.*"):
        if stale.name.endswith(".tmp") or ".old-" in stale.name:
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask sets as it reads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, *, folder: bool) -> None:
    # mkstemp/mkdtemp create 0600/0700 entries; an artifact gets the mode open()/mkdir() would have given it,
    # so a published model or a RUN_DIR stays readable by the group the user's umask allows
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _usual_mode(Path(tmp), folder=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike, what: str, remedy: str = "") -> Any:
    """A JSON artifact loram wrote; missing or corrupt is one line naming the file, what it is and the remedy."""
    from loram_core.errors import LoramError

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LoramError(f"{path} is missing ({what}){'; ' + remedy if remedy else ''}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoramError(f"{path} is unreadable ({what}: {exc}){'; ' + remedy if remedy else ''}") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path`` whole, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _usual_mode(tmp, folder=True)
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
