"""Export the inpainting models to ONNX model-repository folders.

    python -m export.inpainters [--out model_repository] [--force] [--only NAME]

- inpaint_fast_fill: the weight-free push-pull fill (export/inpaint_nets.py), dynamic N, H, W.
- inpaint_unet: the UNet from the committed weights export/weights/inpaint_unet.pt (sha256 pinned
  below; trained by export/train_inpainter.py), the same fill inside, dynamic N, H, W.
- inpaint_refine: the ClassicalRefineUNet from export/weights/inpaint_refine.pt (pinned below):
  (IMAGE, MASK, BASE) -> OUTPUT, a residual over BASE, the classical fill inpaint's auto route
  computed for the window (FSR_FAST on strokes, PatchMatch elsewhere), dynamic N, H, W.
- inpaint_custom: the bring-your-own slot. By default it holds the UNet exported under the foreign
  conventions of the committed inpaint_custom/1/inpaint_spec.json, which proves the adapter
  (retouch/inpaint_adapter.py). A model.onnx that this script did not write is left alone.

Every export is parity-checked against PyTorch with onnxruntime before it is written; a model is
skipped when its model.json still matches the exporter code, the weights, torch and the .onnx file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from export.common import current_export, ort_session, sha256_file, write_model
from export.inpaint_nets import ClassicalRefineUNet, PushPullFill, build_net, widths_of
from export.ncnn_to_onnx import IR_VERSION, OPSET
from retouch.inpaint_adapter import SPEC_FILENAME, InpaintSpec, inpaint_with_spec, load_spec, range_affine

HERE = Path(__file__).parent
WEIGHTS = HERE / "weights" / "inpaint_unet.pt"
WEIGHTS_SHA256 = "ee384edd925140d7a99c6aa9446f87e3c5e16b3df31238b8d1ca954f2a5caf1c"
REFINE_WEIGHTS = HERE / "weights" / "inpaint_refine.pt"
REFINE_WEIGHTS_SHA256 = "fa27d9ea2dad36e50afeff79b8e88cc6d65c8e849468ae1e9118f7f3218882b3"
PARITY_TOL = {"inpaint_fast_fill": 1e-5, "inpaint_unet": 1e-4, "inpaint_refine": 1e-4, "inpaint_custom": 1e-4}
UINT8_HALF_STEP = 0.5 / 255
GENERATOR = "export.inpainters"
LICENSE = "project code and project-trained weights (retouch)"
CANONICAL_IO = {
    "input": "IMAGE float32 [N,3,H,W] RGB in [0,1]; MASK float32 [N,1,H,W], 1 = hole, 0 = known, soft ok",
    "output": "OUTPUT float32 [N,3,H,W] RGB in [0,1]; equals IMAGE exactly where MASK == 0",
}
REFINE_IO = CANONICAL_IO | {
    "input": CANONICAL_IO["input"] + "; BASE float32 [N,3,H,W] RGB in [0,1], a classical fill of the hole",
}


def _pinned_state(weights: Path, pinned: str, sha256: str | None) -> dict:
    """The state_dict in `weights`, refused when its sha256 differs from `sha256` ("pinned": `pinned`;
    None: any weights, for experiments)."""
    sha256 = pinned if sha256 == "pinned" else sha256
    got = sha256_file(weights)
    if sha256 is not None and got != sha256:
        raise RuntimeError(f"sha256 mismatch for {weights}: got {got}, pinned {sha256}")
    return torch.load(weights, map_location="cpu", weights_only=True)


def pinned_weights(name: str) -> tuple[Path, str]:
    """The committed weights a network model is exported from, and their pinned sha256."""
    return (REFINE_WEIGHTS, REFINE_WEIGHTS_SHA256) if name == "inpaint_refine" else (WEIGHTS, WEIGHTS_SHA256)


def load_unet(weights: Path | None = None, sha256: str | None = "pinned") -> nn.Module:
    """The trained network (default: the committed weights, WEIGHTS_SHA256; a UNet or, from a pair's
    weights, a CoarseToFineUNet: same contract, same export)."""
    return build_net(_pinned_state(weights or WEIGHTS, WEIGHTS_SHA256, sha256)).eval()


def load_refine(weights: Path | None = None, sha256: str | None = "pinned") -> ClassicalRefineUNet:
    """The trained ClassicalRefineUNet (default: the committed weights, REFINE_WEIGHTS_SHA256). Its
    state_dict has a UNet's keys, so the caller, not the file, says which net it is."""
    state = _pinned_state(weights or REFINE_WEIGHTS, REFINE_WEIGHTS_SHA256, sha256)
    net = ClassicalRefineUNet(widths_of(state))
    net.load_state_dict(state)
    return net.eval()


class ForeignConvention(nn.Module):
    """Wraps a canonical inpainter so it reads and writes a spec's conventions instead.

    The inverse of retouch.inpaint_adapter, used to prove that adapter on our own UNet.
    """

    def __init__(self, net: nn.Module, spec: InpaintSpec):
        super().__init__()
        self.net, self.spec = net, spec

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if spec.layout == "NHWC":
            image, mask = image.permute(0, 3, 1, 2), mask.permute(0, 3, 1, 2)
        scale, offset = range_affine(spec.image_range)
        image = (image.float() - offset) / scale
        if spec.channel_order == "BGR":
            image = image.flip(1)
        hole = (mask[:, :1].float() - spec.mask_known_value) / (spec.mask_hole_value - spec.mask_known_value)
        out = self.net(image, hole)
        if spec.channel_order == "BGR":
            out = out.flip(1)
        scale, offset = range_affine(spec.output_range)
        out = out * scale + offset
        if spec.image_dtype == "uint8":  # uint8 in, uint8 out, as in MI-GAN's ONNX pipeline
            out = torch.round(out).clamp(0, 255).to(torch.uint8)
        return out.permute(0, 2, 3, 1) if spec.layout == "NHWC" else out


def to_onnx(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    names: tuple[str, ...],
    dynamic: dict[str, dict[int, str]],
) -> onnx.ModelProto:
    """`module` exported with `names`: its inputs', then its output's."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the classic exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            buffer,
            input_names=list(names[:-1]),
            output_names=[names[-1]],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = IR_VERSION  # Triton 24.10's onnxruntime (1.19) loads IR <= 9
    onnx.checker.check_model(model, full_check=True)
    return model


def _nchw_dynamic(names: tuple[str, ...]) -> dict[str, dict[int, str]]:
    return {n: {0: "batch", 2: "height", 3: "width"} for n in names}


def canonical_model(module: nn.Module) -> onnx.ModelProto:
    """IMAGE, MASK (and BASE for a refine net) -> OUTPUT, dynamic N, H, W."""
    example = (torch.rand(1, 3, 64, 64), (torch.rand(1, 1, 64, 64) > 0.7).float())
    names = ("IMAGE", "MASK", "OUTPUT")
    if isinstance(module, ClassicalRefineUNet):
        example, names = (*example, torch.rand(1, 3, 64, 64)), ("IMAGE", "MASK", "BASE", "OUTPUT")
    return to_onnx(module, example, names, _nchw_dynamic(names))


def foreign_model(net: nn.Module, spec: InpaintSpec) -> onnx.ModelProto:
    """`net` exported with `spec`'s I/O names, layout, ranges, dtypes, mask polarity, size and batch."""
    h, w = spec.size or (64, 64)
    batch = spec.batch or 1
    nhwc = spec.layout == "NHWC"
    shape = (batch, h, w, 3) if nhwc else (batch, 3, h, w)
    mask_shape = (batch, h, w, spec.mask_channels) if nhwc else (batch, spec.mask_channels, h, w)
    example = tuple(
        (torch.rand(s) * 255).to(torch.uint8) if dtype == "uint8" else torch.rand(s)
        for s, dtype in ((shape, spec.image_dtype), (mask_shape, spec.mask_dtype))
    )
    axes = {} if spec.batch else {0: "batch"}
    if not spec.size:
        axes |= {1: "height", 2: "width"} if nhwc else {2: "height", 3: "width"}
    dynamic = {n: axes for n in (spec.image_input, spec.mask_input, spec.output)} if axes else {}
    return to_onnx(ForeignConvention(net, spec), example, (spec.image_input, spec.mask_input, spec.output), dynamic)


def to_8bit(image: np.ndarray) -> np.ndarray:
    """Pixels rounded to 8 bits, back in [0,1] float32: what a uint8 model sees and what the service returns."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.float32) / 255


def parity_inputs(height: int = 45, width: int = 70, batch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Odd, non-square sizes and a batch of two, so size and axis mistakes show; the mask mixes a
    block, a line and soft values."""
    rng = np.random.default_rng(0)
    image = rng.random((batch, 3, height, width), dtype=np.float32)
    mask = np.zeros((batch, 1, height, width), np.float32)
    mask[:, :, 10:30, 20:45] = 1.0
    mask[1, :, 35, :] = 1.0
    mask[0, :, 5:9, 50:60] = 0.5
    return image, mask


def torch_reference(module: nn.Module, *arrays: np.ndarray) -> np.ndarray:
    """The module's output for its inputs as arrays (IMAGE, MASK and, for a refine net, BASE)."""
    with torch.no_grad():
        return module(*(torch.from_numpy(a) for a in arrays)).numpy()


def canonical_feeds(module: nn.Module, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The inputs of `module`'s canonical export: a refine net's BASE is a smooth stand-in fill
    (the image blurred), so parity is checked where the net's residual matters."""
    feeds = {"IMAGE": image, "MASK": mask}
    if isinstance(module, ClassicalRefineUNet):
        base = torch.nn.functional.avg_pool2d(torch.from_numpy(image), 5, stride=1, padding=2).numpy()
        feeds["BASE"] = np.ascontiguousarray(base)
    return feeds


def _exporter_sha256() -> str:
    """Hash of the code that defines the exported graphs; a change invalidates earlier exports."""
    files = ("inpaint_nets.py", "inpainters.py", "../retouch/inpaint_adapter.py")
    return hashlib.sha256(b"".join((HERE / f).read_bytes() for f in files)).hexdigest()


def _build(name: str, version_dir: Path) -> tuple[onnx.ModelProto, float, dict]:
    """The checked model, its parity with PyTorch and the manifest fields particular to it."""
    image, mask = parity_inputs()
    sources = {"export/inpaint_nets.py": sha256_file(HERE / "inpaint_nets.py")}
    if name == "inpaint_fast_fill":
        module, fields = PushPullFill().eval(), {"sources": sources, "weights": "none (a fixed algorithm)"}
    else:
        module = load_refine() if name == "inpaint_refine" else load_unet()
        weights, pinned = pinned_weights(name)
        sources[str(weights.relative_to(HERE.parent))] = pinned
        fields = {"sources": sources, "training_report": "export/reports/inpaint_unet.md"}
    if name != "inpaint_custom":
        model = canonical_model(module)
        feeds = canonical_feeds(module, image, mask)
        got = ort_session(model).run(None, feeds)[0]
        diff = float(np.abs(got - torch_reference(module, *feeds.values())).max())
        io = REFINE_IO if name == "inpaint_refine" else CANONICAL_IO
        return model, diff, fields | io | {"dynamic_axes": "N, H, W (any size)"}
    spec = load_spec(version_dir / SPEC_FILENAME)
    sources[SPEC_FILENAME] = sha256_file(version_dir / SPEC_FILENAME)
    model = foreign_model(module, spec)
    session = ort_session(model)
    image, mask = parity_inputs(*spec.size) if spec.size else parity_inputs()
    if spec.mask_threshold is not None:  # the model sees a binarised mask: compare like with like
        mask = (mask > spec.mask_threshold).astype(np.float32)
    if spec.image_dtype == "uint8":  # ... and 8-bit pixels
        image = to_8bit(image)
    got = inpaint_with_spec(lambda feeds: session.run([spec.output], feeds)[0], image, mask, spec)
    diff = float(np.abs(got - torch_reference(module, image, mask)).max())
    if spec.image_dtype == "uint8":  # its output is rounded to 8 bits: count only what lies beyond
        diff = max(0.0, diff - UINT8_HALF_STEP)
    return (
        model,
        diff,
        fields
        | {
            "spec": spec.to_dict(),
            "parity": "adapter(ONNX in spec conventions) vs canonical PyTorch UNet"
            + (", beyond 8-bit rounding" if spec.image_dtype == "uint8" else ""),
        },
    )


def _is_ours(meta_path: Path) -> bool:
    try:
        return json.loads(meta_path.read_text()).get("generated_by") == GENERATOR
    except (OSError, ValueError):
        return False


def export(name: str, out_dir, force: bool = False) -> dict:
    """Write <out_dir>/<name>/1/model.onnx and model.json; skip if already up to date."""
    version_dir = Path(out_dir) / name / "1"
    onnx_path, meta_path = version_dir / "model.onnx", version_dir / "model.json"
    if name == "inpaint_custom" and onnx_path.exists() and not _is_ours(meta_path):
        return {"name": name, "skipped": True, "reason": "a model.onnx brought by the user: left alone"}
    key = {
        "exporter_sha256": _exporter_sha256(),
        "torch": torch.__version__,
        "weights_sha256": None if name == "inpaint_fast_fill" else pinned_weights(name)[1],
    }
    if name == "inpaint_custom":
        key["spec_sha256"] = sha256_file(version_dir / SPEC_FILENAME)
    current = current_export(version_dir, {"key": key})
    if current and not force:
        return current | {"skipped": True}
    model, diff, fields = _build(name, version_dir)
    if not diff < PARITY_TOL[name]:
        raise AssertionError(f"{name}: ONNX vs PyTorch max abs diff {diff} >= {PARITY_TOL[name]}")
    data = model.SerializeToString()
    meta = {
        "name": name,
        "generated_by": GENERATOR,
        "license": LICENSE,
        **fields,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "key": key,
        "parity_max_abs_diff": diff,
    }
    write_model(version_dir, data, meta)
    return meta


MODELS = ("inpaint_fast_fill", "inpaint_unet", "inpaint_refine", "inpaint_custom")
BENCH_SIZES = {
    "inpaint_fast_fill": (512, 256),
    "inpaint_unet": (256, 512),
    "inpaint_refine": (256,),
    "inpaint_custom": (512,),
}


def bench(name: str, out_dir, size: int, batch: int = 1, repeats: int = 20, threads: int = 2) -> float:
    """Median wall time (ms) of one onnxruntime call on the exported model, `threads` intra-op threads."""
    version_dir = Path(out_dir) / name / "1"
    session = ort_session(str(version_dir / "model.onnx"), threads)
    rng = np.random.default_rng(0)
    image = rng.random((batch, 3, size, size), dtype=np.float32)
    mask = np.zeros((batch, 1, size, size), np.float32)
    mask[..., size // 4 : size // 2, size // 3 : size * 2 // 3] = 1
    if name == "inpaint_custom":
        spec = load_spec(version_dir / SPEC_FILENAME)

        def call():
            return inpaint_with_spec(lambda feeds: session.run([spec.output], feeds)[0], image, mask, spec)
    else:
        feeds = {"IMAGE": image, "MASK": mask} | ({"BASE": image} if name == "inpaint_refine" else {})

        def call():
            return session.run(None, feeds)

    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="model_repository", help="model repository root")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument("--only", action="append", choices=MODELS, help="export just these")
    ap.add_argument("--bench", action="store_true", help="then time each model (onnxruntime, 2 threads, batch 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    for name in args.only or MODELS:
        t0 = time.perf_counter()
        meta = export(name, args.out, args.force)
        done = "up to date" if meta.get("skipped") else f"exported in {time.perf_counter() - t0:.1f}s"
        state = meta.get("reason") or done
        parity = f"; parity {meta['parity_max_abs_diff']:.1e}" if "parity_max_abs_diff" in meta else ""
        print(f"{name}: {state}{parity}")
    for name in (args.only or MODELS) if args.bench else ():
        for size in BENCH_SIZES[name]:
            print(f"{name}: {size}x{size}, median {bench(name, args.out, size):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
