"""What every exporter shares: file hashes, an onnxruntime session for parity checks, the
up-to-date check, and writing a model's version folder (model.onnx + model.json) atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ort_session(model, threads: int = 2) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the server may run as another user
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def current_export(version_dir: Path, wanted: dict) -> dict | None:
    """The manifest of an export that is up to date, else None: model.onnx and model.json exist,
    the manifest holds each `wanted` key with that value, and model.onnx hashes to what it records."""
    onnx_path, meta_path = version_dir / "model.onnx", version_dir / "model.json"
    if not (onnx_path.exists() and meta_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    if all(meta.get(k) == v for k, v in wanted.items()) and meta.get("onnx_sha256") == sha256_file(onnx_path):
        return meta
    return None


def write_model(version_dir: Path, onnx_bytes: bytes, meta: dict) -> None:
    """model.onnx, then its manifest model.json: a reader that sees the manifest sees its model."""
    version_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(version_dir / "model.onnx", onnx_bytes)
    write_atomic(version_dir / "model.json", (json.dumps(meta, indent=2) + "\n").encode())


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it: a reader (or a
    crash) never sees half a checkpoint."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: Path, model, optimiser, step: int, rng, args, reason: str, **extra) -> None:
    """A training checkpoint that resumes exactly (weights, optimiser, step, numpy and torch RNG
    states, the arguments), written atomically (save_atomic)."""
    import sys

    import torch

    state = {
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "step": step,
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    save_atomic(state | extra, path)
    print(f"checkpoint at step {step} ({reason})", file=sys.stderr, flush=True)


def train_until(one_step, save, step: int, args, log_every: int = 100, smoothing: float = 0.98) -> int:
    """Run one_step(step) -> loss until args.steps steps, args.minutes minutes or a SIGTERM; print
    the running loss every log_every steps, call save(step, reason) every args.every_min minutes
    and at the end. Returns the step reached."""
    import signal
    import sys
    import time

    stop: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
    started = last = time.time()
    running = None
    while step < args.steps and not stop:
        loss = one_step(step)
        step += 1
        running = loss if running is None else smoothing * running + (1 - smoothing) * loss
        if step % log_every == 0:
            print(f"step {step} loss {running:.4f} {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        if time.time() - last > args.every_min * 60:
            save(step, "periodic")
            last = time.time()
        if time.time() - started > args.minutes * 60:
            stop.append("time")
    save(step, stop[0] if stop else "done")
    return step


def load_checkpoint(path: Path, model, optimiser, rng) -> dict:
    """Restore what save_checkpoint wrote into model, optimiser and rng (and torch's RNG); returns
    the whole state (its step and extras). weights_only: no pickled objects are ever run."""
    import torch

    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    return state
