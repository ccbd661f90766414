"""Remove /dev/shm regions the Python backend left behind, and only those no process still maps.

A stub that dies during start-up can leave triton_python_backend_shm_region_* files behind; they
hold memory until removed. Regions some process maps are left alone, and so are young ones: a
server that is starting creates its regions a moment before it maps them.
"""

from __future__ import annotations

import glob
import os
import time

MIN_AGE_S = 120


def regions_in_use() -> set[str]:
    used = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps) as f:
                used.update(line.split()[-1] for line in f if "/dev/shm/" in line)
        except OSError:  # the process exited, or is not ours to read
            continue
    return used


def main() -> None:
    used = regions_in_use()
    removed = 0
    for path in glob.glob("/dev/shm/triton_python_backend_shm_region_*"):
        try:
            if path not in used and time.time() - os.stat(path).st_mtime > MIN_AGE_S:
                os.unlink(path)
                removed += 1
        except FileNotFoundError:
            pass
    if removed:
        print(f"clean_shm: removed {removed} stale Python backend region(s)")


if __name__ == "__main__":
    main()
