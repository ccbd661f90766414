"""Bring-your-own ONNX: the spec adapter round-trips every convention, and the project's own UNet
exported under foreign conventions gives the canonical UNet's result through it."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from export.inpainters import export, load_unet, ort_session, torch_reference
from retouch.inpaint_adapter import SPEC_FILENAME, InpaintSpec, inpaint_with_spec, load_spec, to_model
from retouch.masks import block_mask, text_stroke_mask

ROOT = Path(__file__).resolve().parents[2]
GREY = 0.25

SPECS = {
    "canonical": InpaintSpec(),
    "nhwc_bgr_pm1_inverted": InpaintSpec(
        layout="NHWC",
        channel_order="BGR",
        image_range="-1..1",
        output_range="-1..1",
        mask_hole_value=0,
        mask_known_value=1,
    ),
    "uint8_mask255_3ch": InpaintSpec(
        image_range="0..255",
        image_dtype="uint8",
        output_range="0..255",
        mask_hole_value=255,
        mask_known_value=0,
        mask_dtype="uint8",
        mask_channels=3,
    ),
    "fixed_512_batch1": InpaintSpec(size=(512, 512), batch=1, mask_threshold=0.0),
    "dynamic_multiple_8": InpaintSpec(size_multiple=8, layout="NHWC"),
}


def fake_model(spec: InpaintSpec, seen: list):
    """A model in `spec`'s conventions that paints holes GREY; decoded here independently of the adapter."""
    lo, hi = {"0..1": (0, 1), "-1..1": (-1, 1), "0..255": (0, 255)}[spec.image_range]

    def run(feeds):
        image, mask = feeds[spec.image_input].astype(np.float32), feeds[spec.mask_input].astype(np.float32)
        seen.append({k: (v.shape, v.dtype) for k, v in feeds.items()})
        if spec.layout == "NHWC":
            image, mask = image.transpose(0, 3, 1, 2), mask.transpose(0, 3, 1, 2)
        hole = (mask[:, :1] - spec.mask_known_value) / (spec.mask_hole_value - spec.mask_known_value)
        unit = (image - lo) / (hi - lo)
        out = unit * (1 - hole) + GREY * hole
        olo, ohi = {"0..1": (0, 1), "-1..1": (-1, 1), "0..255": (0, 255)}[spec.output_range]
        out = out * (ohi - olo) + olo
        return out.transpose(0, 2, 3, 1) if spec.layout == "NHWC" else out

    return run


@pytest.mark.parametrize("name", SPECS)
def test_adapter_round_trip(name):
    spec = SPECS[name]
    rng = np.random.default_rng(1)
    image = rng.random((3, 3, 60, 90), dtype=np.float32)
    mask = np.stack([block_mask(60, 90, rng, size=(0.3, 0.5)) for _ in range(3)])[:, None]
    seen = []
    out = inpaint_with_spec(fake_model(spec, seen), image, mask, spec)
    assert out.shape == image.shape and out.dtype == np.float32
    known = np.broadcast_to(mask == 0, image.shape)
    np.testing.assert_array_equal(out[known], image[known])  # bit for bit, whatever the model did
    inner = binary_erosion(mask == 1, np.ones((1, 1, 5, 5)))  # resizing smears the hole's edge
    assert np.abs(out[np.broadcast_to(inner, image.shape)] - GREY).max() < 0.01
    n_calls = 3 if spec.batch == 1 else 1
    assert len(seen) == n_calls
    feed = seen[0][spec.image_input]
    m = spec.size_multiple
    h, w = spec.size or (-(-60 // m) * m, -(-90 // m) * m)
    assert feed == (
        ((spec.batch or 3), h, w, 3) if spec.layout == "NHWC" else ((spec.batch or 3), 3, h, w),
        np.dtype(spec.image_dtype),
    )
    mask_channels = seen[0][spec.mask_input][0][3 if spec.layout == "NHWC" else 1]
    assert mask_channels == spec.mask_channels


def test_feeds_follow_polarity_and_range():
    spec = SPECS["uint8_mask255_3ch"]
    image = np.full((1, 3, 4, 4), 0.5, np.float32)
    mask = np.zeros((1, 1, 4, 4), np.float32)
    mask[..., 0, 0] = 1
    feeds = to_model(image, mask, spec)
    assert feeds["IMAGE"].dtype == np.uint8 and feeds["IMAGE"].max() == 128
    assert feeds["MASK"][0, :, 0, 0].tolist() == [255, 255, 255] and feeds["MASK"][0, :, 1, 1].tolist() == [0, 0, 0]
    bgr = to_model(
        np.arange(3, dtype=np.float32).reshape(1, 3, 1, 1) / 2, mask[..., :1, :1], SPECS["nhwc_bgr_pm1_inverted"]
    )
    assert bgr["IMAGE"].tolist() == [[[[1.0, 0.0, -1.0]]]]  # B, G, R in -1..1
    assert bgr["MASK"].tolist() == [[[[0.0]]]]  # hole is 0 in an inverted mask


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"layout": "CHWN"}, "layout"),
        ({"image_dtype": "uint8"}, "uint8 image"),
        ({"mask_hole_value": 0}, "must differ"),
        ({"size": [512]}, "size"),
        ({"colour": "RGB"}, "unknown keys"),
    ],
)
def test_bad_specs_fail_loudly(bad, message):
    with pytest.raises(ValueError, match=message):
        InpaintSpec.from_dict(bad)


def test_committed_demo_spec_is_foreign_on_every_axis():
    spec = load_spec(ROOT / "model_repository/inpaint_custom/1" / SPEC_FILENAME)
    assert spec.layout == "NHWC" and spec.channel_order == "BGR" and spec.image_range == "-1..1"
    assert spec.mask_hole_value == 0 and spec.size == (512, 512) and spec.batch == 1
    assert InpaintSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# Two real ONNX files of the same UNet under different conventions: the committed demo spec (NHWC,
# BGR, [-1,1] float, inverted mask, fixed 512x512, batch 1) and MI-GAN's documented one (NCHW, uint8
# image and output, uint8 mask with 255 = known, any H and W, batch 1).
FOREIGN_SPECS = {
    "demo_nhwc_bgr_512": ROOT / "model_repository/inpaint_custom/1" / SPEC_FILENAME,
    "migan_uint8_dynamic": ROOT / "docs/specs/migan.json",
}


@pytest.fixture(scope="module", params=FOREIGN_SPECS)
def custom(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("model_repository")
    slot = root / "inpaint_custom" / "1"
    slot.mkdir(parents=True)
    shutil.copy(FOREIGN_SPECS[request.param], slot / SPEC_FILENAME)
    meta = export("inpaint_custom", root)
    spec = load_spec(slot / SPEC_FILENAME)
    session = ort_session(str(slot / "model.onnx"))
    return meta, spec, lambda feeds: session.run([spec.output], feeds)[0]


def test_documented_specs_load():
    for path in sorted((ROOT / "docs/specs").glob("*.json")):
        assert load_spec(path).to_dict() == json.loads(path.read_text()), path.name


def test_unet_under_foreign_conventions_equals_the_canonical_unet(custom):
    """The proof for bring-your-own ONNX, on 512x512 photographs and two images per request (each
    batch-1 model is called twice)."""
    from skimage import data

    meta, spec, run = custom
    image = np.ascontiguousarray(data.astronaut().transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    image = np.concatenate([image, image[:, :, ::-1]])
    rng = np.random.default_rng(0)
    mask = np.stack([text_stroke_mask(512, 512, rng), block_mask(512, 512, rng)])[:, None]
    canonical = torch_reference(load_unet(), image, mask)
    got = inpaint_with_spec(run, image, mask, spec)
    rounding = 0.5 / 255 if spec.image_dtype == "uint8" else 0.0  # a uint8 model's output is 8-bit
    assert np.abs(got - canonical).max() < 1e-4 + rounding
    assert meta["parity_max_abs_diff"] < 1e-4 and meta["spec"] == spec.to_dict()
    feeds = to_model(image[:1], mask[:1], spec)
    assert {k: v.dtype for k, v in feeds.items()} == {
        spec.image_input: np.dtype(spec.image_dtype),
        spec.mask_input: np.dtype(spec.mask_dtype),
    }


def test_foreign_model_serves_other_sizes(custom):
    """A 256x200 request: a fixed-size model sees it resized to its 512x512 and back, a dynamic one
    as it is. Known pixels stay exact either way."""
    from skimage import data

    _, spec, run = custom
    image = np.ascontiguousarray(data.coffee()[100:356, 150:350].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    mask = block_mask(256, 200, np.random.default_rng(2))[None, None]
    got = inpaint_with_spec(run, image, mask, spec)
    canonical = torch_reference(load_unet(), image, mask)
    known = np.broadcast_to(mask == 0, image.shape)
    np.testing.assert_array_equal(got[known], image[known])
    hole = np.broadcast_to(mask == 1, image.shape)
    if spec.size:
        assert np.abs(got[hole] - canonical[hole]).mean() < 0.03  # same net, seen at twice the scale
        with pytest.raises(Exception, match="(?i)dimension"):  # the export really is fixed-size
            inpaint_with_spec(run, image, mask, replace(spec, size=None))
    else:
        assert np.abs(got[hole] - canonical[hole]).max() < 0.5 / 255 + 1e-4  # only 8-bit rounding apart
