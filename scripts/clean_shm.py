"""Remove /dev/shm regions the Python backend left behind, and only those no process still maps.

A stub that dies during start-up can leave triton_python_backend_shm_region_* files behind; they
hold memory until removed. Regions of a server that is still running are left alone.
"""

from __future__ import annotations

import glob
import os


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
        if path not in used:
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
    if removed:
        print(f"clean_shm: removed {removed} stale Python backend region(s)")


if __name__ == "__main__":
    main()
