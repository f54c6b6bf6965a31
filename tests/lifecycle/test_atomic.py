"""Atomic writes: whole or absent, and with the mode a plain open()/mkdir() would have given under the umask."""

import os
import stat

import pytest

from loram_core.atomic import atomic_dir, write_json


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_artifacts_get_the_mode_the_umask_allows(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "report.json", {"ok": 1})
        with atomic_dir(tmp_path / "pruned") as tmp:
            (tmp / "config.json").write_text("{}")
        plain_file = tmp_path / "plain.txt"
        plain_file.write_text("x")
        plain_dir = tmp_path / "plain"
        plain_dir.mkdir()
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "report.json") == mode(plain_file) == 0o666 & ~umask
    assert mode(tmp_path / "pruned") == mode(plain_dir) == 0o777 & ~umask
    assert (tmp_path / "pruned" / "config.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "plain.txt", "pruned", "report.json"]


def test_a_failed_write_leaves_the_earlier_artifact_whole(tmp_path):
    write_json(tmp_path / "report.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "report.json.d"):
            raise RuntimeError("crash mid-write")

    class Unserializable:
        pass

    with pytest.raises(TypeError):
        write_json(tmp_path / "report.json", {"v": Unserializable()})
    assert (tmp_path / "report.json").read_text() == '{\n  "v": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
