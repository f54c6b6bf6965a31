"""The memory probes: the anonymous peak sees tensors the process allocates and not the pages of a mapped file,
which the resident set (VmHWM) counts."""

import mmap

import pytest
import torch

from loram_core import memory

pytestmark = pytest.mark.skipif(memory.current_anon_mb() is None, reason="needs Linux /proc")

MIB = 2**20


def test_anon_peak_holds_a_freed_allocation():
    with memory.AnonPeak(interval=0.001) as peak:
        block = torch.ones(64 * MIB // 4)  # 64 MiB, touched
        for _ in range(50):  # held over many sampling intervals
            block.add_(1)
        del block
    assert 60 <= peak.peak_mb <= 80, peak.peak_mb


def test_mapped_file_pages_count_in_the_resident_set_not_in_the_anonymous_peak(tmp_path):
    path = tmp_path / "shard.bin"
    path.write_bytes(b"\1" * (64 * MIB))
    with open(path, "rb") as f, memory.AnonPeak(interval=0.001) as peak:
        rss_before = memory.current_rss_mb()
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        total = sum(mapped[i] for i in range(0, len(mapped), 4096))  # touch every page
        rss_mapped = memory.current_rss_mb()
        mapped.close()
    assert total == 64 * MIB // 4096
    assert rss_mapped - rss_before >= 60  # the file's pages are resident
    assert peak.peak_mb < 16, peak.peak_mb  # and none of them anonymous
