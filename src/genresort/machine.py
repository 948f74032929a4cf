"""What this machine lets genresort use: the CPU cores it may run on and the memory its service may hold, as
systemd (CPUAffinity=, MemoryMax=) or a container narrows them. `workers = "auto"` is sized from these."""

from __future__ import annotations

import os
from pathlib import Path

#: What one analysis worker holds with the model loaded while it hears a long track (bench/bench_bulk.py: about
#: 160 MB), with room to spare; and the daemon beside its workers (about 45 MB).
WORKER_BYTES = 200 * 2**20
DAEMON_BYTES = 100 * 2**20
CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def memory_limit(cgroup_root: Path = CGROUP_ROOT, membership: str | None = None) -> int | None:
    """The tightest memory limit (bytes) on this process's cgroup and the cgroups above it, cgroup v2 (memory.max)
    or v1 (memory.limit_in_bytes); None when there is none (or no cgroup file system to read)."""
    try:
        membership = Path("/proc/self/cgroup").read_text() if membership is None else membership
    except OSError:
        return None
    limits = []
    for line in membership.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy for every controller
            folder, name = cgroup_root / path.lstrip("/"), "memory.max"
        elif "memory" in controllers.split(","):
            folder, name = cgroup_root / "memory" / path.lstrip("/"), "memory.limit_in_bytes"
        else:
            continue
        for level in (folder, *folder.parents):
            if not level.is_relative_to(cgroup_root):
                break
            try:
                text = (level / name).read_text().strip()
            except OSError:
                continue
            if text.isdigit():
                limits.append(int(text))
    return min(limits, default=None)


def auto_workers(cores: int, memory: int | None, most: int) -> int:
    """One analysis worker per core, as many as the memory limit holds beside the daemon (at least one: a limit too
    tight for one worker is the unit's to mend, and the worker's own failure will say so), at most `most`."""
    fits = most if memory is None else (memory - DAEMON_BYTES) // WORKER_BYTES
    return max(1, min(cores, fits, most))
