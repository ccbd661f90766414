"""The ONNX exports of the ncnn upscalers match ncnn itself, at exactly scale x, and tile cleanly."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from skimage import data

from export.common import current_export, ort_session, sha256_file
from export.ncnn_to_onnx import build_onnx, load_weights, parse_param
from export.upscalers import MODELS, PINNED_SHA256, _converter_sha256, export, ncnn_reference, source_files

# Both sides run fp32 (fp16 weights decode exactly to fp32; ncnn fp16/int8 options off), so only
# summation order differs: observed <= 6e-6 on [0,1] images; 1e-4 still catches any real mistake.
TOL = 1e-4
MAX_RADIUS = {
    "upscaler_waifu2x_photo_x2": 8,
    "upscaler_animevideov3_x4": 20,
    "upscaler_animevideov3_x2": 20,
    **{f"upscaler_waifu2x_photo_x2_denoise{n}": 8 for n in (1, 2, 3)},
}
# RRDBNet (x4plus) is 16.7M parameters: on a CPU it gets one small input, and its receptive field
# (hundreds of px exactly) is checked through the effective radius instead of bit-exact tiling.
WIDE = {name for name, spec in MODELS.items() if spec.wide_field}
SMALL_NETS = [name for name in MODELS if name not in WIDE]


def astronaut_crop():
    """64x80 natural-image crop (non-square, so H/W mix-ups show), RGB in [0,1], [1,3,64,80]."""
    img = data.astronaut()[100:164, 180:260]
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None] / 255.0, dtype=np.float32)


INPUTS = {
    "astronaut_64x80": astronaut_crop,
    "random_2x3x37x50": lambda: np.random.default_rng(7).random((2, 3, 37, 50), dtype=np.float32),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_repository")
    cache = {}

    def get(name):
        if name not in cache:
            # The wide net takes minutes to export on a loaded CPU: set-up's export (its own parity
            # check passed before it was written) is reused when it is up to date with the sources.
            served = Path(__file__).resolve().parents[2] / "model_repository"
            up_to_date = name in WIDE and current_export(
                served / name / "1",
                {
                    "source_files": {fn: sha256_file(f) for fn, f in source_files(MODELS[name]).items()},
                    "converter_sha256": _converter_sha256(),
                },
            )
            out = served if up_to_date else root
            meta = export(name, out)
            path = out / name / "1" / "model.onnx"
            cache[name] = (meta, path, ort_session(str(path)))
        return cache[name]

    return get


@pytest.mark.parametrize("name,inp", [(n, i) for n in MODELS for i in INPUTS if n not in WIDE or i.startswith("astro")])
def test_parity_with_ncnn(name, inp, exported):
    meta, _, sess = exported(name)
    x = INPUTS[inp]()
    if name in WIDE:
        x = np.ascontiguousarray(x[:, :, :16, :24])
    y = sess.run(None, {"INPUT": x})[0]
    s = MODELS[name].scale
    assert y.shape == (x.shape[0], 3, s * x.shape[2], s * x.shape[3])
    diff = np.abs(y - ncnn_reference(MODELS[name], x)).max()
    assert diff < TOL, f"{name} on {inp}: max abs diff {diff}"
    if inp.startswith("astronaut"):  # a real upscaler keeps the image: compare to nearest upsampling
        assert np.abs(y - x.repeat(s, 2).repeat(s, 3)).mean() < 0.05


@pytest.mark.parametrize("name", ["upscaler_animevideov3_x4", "upscaler_animevideov3_x2"])
def test_bare_net_parity_including_borders(name):
    """Without the baked edge padding/crop, the converted net still matches ncnn on every pixel,
    so zero-padded convs and the bicubic 0.5x edge clamp are right too (waifu2x has no bare form:
    its valid convs need the padding)."""
    spec = replace(MODELS[name], prepad=0, crop=0)
    files = source_files(spec)
    layers = parse_param(files[spec.stem + ".param"])
    model = build_onnx(layers, load_weights(layers, files[spec.stem + ".bin"]), output_blob=spec.output_blob)
    x = astronaut_crop()[:, :, :30, :41]
    y = ort_session(model).run(None, {"INPUT": x})[0]
    assert np.abs(y - ncnn_reference(spec, x)).max() < TOL


@pytest.mark.parametrize("name", MODELS)
def test_model_contract(name, exported):
    meta, path, _ = exported(name)
    model = onnx.load(path)
    assert model.opset_import[0].version == 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("INPUT", "OUTPUT")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert {t.data_type for t in model.graph.initializer if t.dims and len(t.dims) > 1} == {onnx.TensorProto.FLOAT}
    assert meta["source_files"] == {fn: PINNED_SHA256[fn] for fn in meta["source_files"]}
    assert meta["parity_max_abs_diff"] < TOL
    assert meta["scale"] == MODELS[name].scale


@pytest.mark.parametrize("name", sorted(WIDE))
def test_wide_model_effective_radius(name, exported):
    """RRDBNet's exact field is wider than any probe; what sets its tile margin is how far a pixel
    moves outputs by more than half an 8-bit step: measured, recorded, and under the default overlap."""
    from retouch.settings import MODE_TILING

    meta, _, _ = exported(name)
    assert meta["receptive_radius_px"] is None
    tile, overlap, margin = MODE_TILING[MODELS[name].mode]
    assert 20 < meta["effective_radius_px"] < 90
    assert margin < overlap / 2 < tile


@pytest.mark.parametrize("name", SMALL_NETS)
def test_receptive_radius_and_tiling(name, exported):
    """The measured radius is right and tight: R px of context reproduce the untiled output, R-1 do not."""
    meta, _, sess = exported(name)
    r = meta["receptive_radius_px"]
    assert 0 < r <= MAX_RADIUS[name]
    s = MODELS[name].scale
    x = astronaut_crop()
    full = sess.run(None, {"INPUT": x})[0]

    def tile_error(y0, y1, x0, x1, ctx):
        a, b = max(y0 - ctx, 0), min(y1 + ctx, x.shape[2])
        c, d = max(x0 - ctx, 0), min(x1 + ctx, x.shape[3])
        out = sess.run(None, {"INPUT": np.ascontiguousarray(x[:, :, a:b, c:d])})[0]
        got = out[:, :, (y0 - a) * s : (y1 - a) * s, (x0 - c) * s : (x1 - c) * s]
        return np.abs(got - full[:, :, y0 * s : y1 * s, x0 * s : x1 * s]).max()

    # Bit-exact, as the tiler relies on; the outermost ring's weight is tiny (~1e-6 for animevideov3_x2),
    # so R-1 is checked for "not identical" rather than against a tolerance.
    interior = (20, 44, 25, 55)
    assert tile_error(*interior, r) == 0
    assert tile_error(*interior, r - 1) > 0
    assert tile_error(0, 24, 0, 30, r) == 0  # image-corner tile: in-graph edge padding is tile-invariant


def test_export_is_idempotent(tmp_path):
    name = "upscaler_waifu2x_photo_x2"
    first = export(name, tmp_path)
    assert not first.get("skipped")
    assert export(name, tmp_path)["skipped"]
    onnx_path = tmp_path / name / "1" / "model.onnx"
    onnx_path.write_bytes(b"corrupt")
    rebuilt = export(name, tmp_path)
    assert not rebuilt.get("skipped") and rebuilt["onnx_sha256"] == first["onnx_sha256"]
    assert json.loads((onnx_path.parent / "model.json").read_text())["onnx_sha256"] == first["onnx_sha256"]
    assert export(name, tmp_path, force=True)["onnx_sha256"] == first["onnx_sha256"]


def test_wrong_weights_fail_loudly(tmp_path, monkeypatch):
    spec = MODELS["upscaler_waifu2x_photo_x2"]
    files = source_files(spec)
    layers = parse_param(files[spec.stem + ".param"])
    bad = tmp_path / "short.bin"
    bad.write_bytes(files[spec.stem + ".bin"].read_bytes()[:-4])
    with pytest.raises(ValueError, match="layout mismatch"):
        load_weights(layers, bad)
    monkeypatch.setitem(PINNED_SHA256, spec.stem + ".bin", "0" * 64)
    with pytest.raises(RuntimeError, match="sha256 mismatch"):
        export("upscaler_waifu2x_photo_x2", tmp_path)
