"""Assemble a runnable tritonserver from the nvidia-pytriton wheel.

The wheel ships the server binary, the Python backend, per-Python-version stubs and the local
response cache, but not in the directory layout tritonserver expects. We build that layout under
.triton/ and link the two libraries perf_analyzer (from the tritonclient wheel) needs by their
SONAMEs. Idempotent: files are copied only when they differ.
"""

from __future__ import annotations

import argparse
import filecmp
import glob
import os
import shutil
import sys
import sysconfig
from pathlib import Path


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or not filecmp.cmp(src, dst, shallow=False):
        shutil.copy2(src, dst)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if os.readlink(link) == str(target):
            return
        link.unlink()
    link.symlink_to(target)


def _only(pattern: str) -> Path:
    hits = glob.glob(pattern)
    if len(hits) != 1:
        sys.exit(f"assemble_triton: expected one file matching {pattern}, found {hits}")
    return Path(hits[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--venv", required=True, type=Path)
    ap.add_argument("--dest", required=True, type=Path)
    args = ap.parse_args()

    site = Path(sysconfig.get_paths(vars={"base": str(args.venv), "platbase": str(args.venv)})["purelib"])
    wheel = site / "pytriton" / "tritonserver"
    libs = site / "nvidia_pytriton.libs"
    if not (wheel / "bin" / "tritonserver").exists():
        sys.exit(f"assemble_triton: {wheel}/bin/tritonserver not found; is nvidia-pytriton installed?")
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = wheel / "python_backend_stubs" / pyver / "triton_python_backend_stub"
    if not stub.exists():
        sys.exit(f"assemble_triton: no Python backend stub for Python {pyver} in the wheel")

    dest = args.dest
    backend = dest / "backends" / "python"
    _copy(wheel / "backends" / "python" / "libtriton_python.so", backend / "libtriton_python.so")
    _copy(wheel / "backends" / "python" / "triton_python_backend_utils.py", backend / "triton_python_backend_utils.py")
    _copy(stub, backend / "triton_python_backend_stub")
    _copy(wheel / "caches" / "local" / "libtritoncache_local.so", dest / "caches" / "local" / "libtritoncache_local.so")
    _link(wheel / "bin" / "tritonserver", dest / "bin" / "tritonserver")
    # perf_analyzer asks for these SONAMEs; the wheel's bundled copies carry hashed names.
    _link(_only(str(libs / "libb64-*.so.0d")), dest / "lib" / "libb64.so.0d")
    _link(_only(str(libs / "libcudart-*.so.12*")), dest / "lib" / "libcudart.so.12")
    perf = args.venv / "bin" / "perf_analyzer"
    if perf.exists():
        _link(perf, dest / "bin" / "perf_analyzer")
    print(f"[setup] tritonserver assembled under {dest}")


if __name__ == "__main__":
    main()
