"""Export the learned glyph segmenter (export/train_glyph_segmenter.py's GlyphNet) to ONNX.

    python -m export.glyph_segmenters [--out model_repository] [--force]

INPUT float32 [N, 4, 48, W] (retouch.glyphs.crop_input: RGB in [0, 1] and the detector's box; W a
multiple of 4) -> OUTPUT float32 [N, 1, 48, W], each pixel's ink probability. Dynamic N and W.
The weights are export/weights/glyph_segmenter.pt (sha256 pinned below; run1 at step 3,215,
docs/reports/glyph_segmenter.md). Parity with PyTorch is checked before writing.

Served as model_repository/glyph_segmenter: text_remove calls it to shape the lines it paints
(retouch.glyphs.segment_lines); scripts/setup.sh and the Dockerfile export it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from export.common import current_export, ort_session, sha256_file, write_model
from export.ncnn_to_onnx import IR_VERSION, OPSET
from export.train_glyph_segmenter import GlyphNet
from retouch.glyphs import CROP_HEIGHT, SEGMENTER

HERE = Path(__file__).parent
NAME = SEGMENTER
MODEL_NAME = NAME  # the model folder it writes (as the other exporters name it)
WEIGHTS = HERE / "weights" / "glyph_segmenter.pt"
WEIGHTS_SHA256 = "22c4646b5320ddda33eac7fb348aa55b3e5332a681dcab3a349017c419db4a74"
PARITY_TOL = 1e-5


class Probabilities(nn.Module):
    """GlyphNet's logits -> probabilities, so the served model answers what the post-process reads."""

    def __init__(self, net: GlyphNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


def load_net(weights: Path = WEIGHTS, sha256: str | None = WEIGHTS_SHA256) -> GlyphNet:
    """The trained net; refuses weights whose sha256 differs from `sha256` (None: any, for experiments)."""
    got = sha256_file(weights)
    if sha256 is not None and got != sha256:
        raise RuntimeError(f"sha256 mismatch for {weights}: got {got}, pinned {sha256}")
    net = GlyphNet()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def to_onnx(module: nn.Module) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, 4, CROP_HEIGHT, 64),),
            buffer,
            input_names=["INPUT"],
            output_names=["OUTPUT"],
            dynamic_axes={"INPUT": {0: "N", 3: "W"}, "OUTPUT": {0: "N", 3: "W"}},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = IR_VERSION  # Triton 24.10's onnxruntime (1.19) loads IR <= 9
    return model


def parity_inputs(seed: int = 0) -> np.ndarray:
    """Two crops of a width other than the traced one, pixels random, a box band in the middle."""
    rng = np.random.default_rng(seed)
    x = rng.random((2, 4, CROP_HEIGHT, 136), dtype=np.float32)
    x[:, 3] = 0.0
    x[:, 3, 12:36, 8:128] = 1.0
    return x


def _exporter_sha256() -> str:
    return hashlib.sha256(
        b"".join((HERE / f).read_bytes() for f in ("glyph_segmenters.py", "train_glyph_segmenter.py"))
    ).hexdigest()


def export(out: Path, force: bool = False) -> dict:
    version_dir = Path(out) / NAME / "1"
    wanted = {"exporter_sha256": _exporter_sha256(), "weights_sha256": WEIGHTS_SHA256, "torch": torch.__version__}
    if not force and (meta := current_export(version_dir, wanted)):
        return meta | {"skipped": True}
    module = Probabilities(load_net()).eval()
    model = to_onnx(module)
    x = parity_inputs()
    got = ort_session(model).run(None, {"INPUT": x})[0]
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - expected).max())
    if diff > PARITY_TOL:
        raise RuntimeError(f"{NAME}: onnxruntime differs from PyTorch by {diff:.2e} (> {PARITY_TOL})")
    data = model.SerializeToString()
    meta = wanted | {
        "model": NAME,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "parity_max_abs_diff": diff,
        "io": "INPUT float32 [N,4,48,W] (RGB in [0,1], box in {0,1}); OUTPUT float32 [N,1,48,W] ink probability",
        "weights": str(WEIGHTS.relative_to(HERE.parent)),
        "report": "docs/reports/glyph_segmenter.md",
        "license": "project code and project-trained weights (retouch)",
    }
    write_model(version_dir, data, meta)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("model_repository"), help="model repository root")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    meta = export(args.out, args.force)
    state = "up to date" if meta.get("skipped") else "exported"
    print(f"{NAME}: {state}; parity {meta['parity_max_abs_diff']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
