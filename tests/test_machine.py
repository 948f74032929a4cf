"""What `workers = "auto"` counts: the cores genresort may use and the memory its service may hold.

The cgroup file system cannot be written here (it is the machine's), so folders of the same shape stand in for it.
"""

from __future__ import annotations

from pathlib import Path

from genresort.machine import DAEMON_BYTES, WORKER_BYTES, auto_workers, memory_limit

MIB = 2**20


def test_the_tightest_limit_of_the_services_cgroup_and_those_above_it_counts_in_cgroup_v2(tmp_path: Path) -> None:
    service = tmp_path / "system.slice" / "genresort.service"
    service.mkdir(parents=True)
    (tmp_path / "system.slice" / "memory.max").write_text(f"{2048 * MIB}\n")
    (service / "memory.max").write_text(f"{1024 * MIB}\n")
    assert memory_limit(tmp_path, "0::/system.slice/genresort.service\n") == 1024 * MIB
    (service / "memory.max").write_text("max\n")  # no limit of its own: the slice's holds
    assert memory_limit(tmp_path, "0::/system.slice/genresort.service\n") == 2048 * MIB


def test_cgroup_v1s_memory_controller_is_read_and_no_limit_is_none(tmp_path: Path) -> None:
    group = tmp_path / "memory" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text(f"{512 * MIB}\n")
    membership = "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n"
    assert memory_limit(tmp_path, membership) == 512 * MIB
    assert memory_limit(tmp_path / "nothing", "0::/\n") is None


def test_auto_is_a_worker_per_core_as_many_as_the_memory_limit_holds() -> None:
    assert auto_workers(cores=2, memory=None, most=64) == 2
    assert auto_workers(cores=128, memory=None, most=64) == 64
    one_gib = 1024 * MIB  # the shipped unit's MemoryMax=
    assert auto_workers(cores=16, memory=one_gib, most=64) == (one_gib - DAEMON_BYTES) // WORKER_BYTES == 4
    assert auto_workers(cores=2, memory=one_gib, most=64) == 2
    assert auto_workers(cores=8, memory=200 * MIB, most=64) == 1  # too tight for one: the worker will say so
