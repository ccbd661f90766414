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
