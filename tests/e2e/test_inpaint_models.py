"""The inpainting models, called directly through a real tritonserver (the Python-backend shims,
not the ONNX files alone): canonical contract, known pixels exact, the refine net improving on the
classical fill it is given, and the bring-your-own slot (the UNet under foreign conventions)
agreeing with inpaint_unet."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from skimage import data

from retouch.inpaint import InpaintSettings, classical_fill, classical_pick
from retouch.masks import block_mask, text_stroke_mask

pytestmark = pytest.mark.e2e
MODELS = ("inpaint_fast_fill", "inpaint_unet", "inpaint_custom")


def infer(triton, model: str, image: np.ndarray, mask: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    arrays = {"IMAGE": image, "MASK": mask} | ({} if base is None else {"BASE": base})
    inputs = []
    for name, array in arrays.items():
        inputs.append(grpcclient.InferInput(name, list(array.shape), "FP32"))
        inputs[-1].set_data_from_numpy(array)
    return triton.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput("OUTPUT")]).as_numpy("OUTPUT")


def case(rgb: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A square photo as IMAGE [1,3,S,S] and a text-plus-block MASK."""
    size = rgb.shape[0]
    image = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    rng = np.random.default_rng(seed)
    mask = np.maximum(text_stroke_mask(size, size, rng), block_mask(size, size, rng))[None, None]
    return image, mask


@pytest.mark.parametrize("model", MODELS)
def test_models_fill_holes_and_keep_known_pixels(triton, photos, model):
    image, mask = case(photos["coffee"], 1)
    out = infer(triton, model, image * (1 - mask), mask)  # the true hole pixels stay here, for scoring
    assert out.shape == image.shape and out.dtype == np.float32
    known = np.broadcast_to(mask == 0, image.shape)
    np.testing.assert_array_equal(out[known], image[known])
    hole = np.broadcast_to(mask == 1, image.shape)
    flat = np.abs(image[hole] - image[known].mean()).mean()  # filling with the mean known colour
    assert np.abs(out[hole] - image[hole]).mean() < 0.8 * flat


def test_refine_net_improves_on_the_classical_fill_it_is_given(triton, photos):
    """inpaint_refine's BASE is the classical fill inpaint's auto route picks; the served net keeps
    known pixels and lands closer to the photo than that fill, on held-out photos."""
    gains = []
    for name in ("astronaut", "chelsea"):
        rgb = photos[name]
        image, mask = case(rgb, 5)
        hole = mask[0, 0] > 0
        base = classical_fill(classical_pick(rgb, hole, InpaintSettings()), rgb, hole)
        base = np.ascontiguousarray(base.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        out = infer(triton, "inpaint_refine", image * (1 - mask), mask, base)
        known = np.broadcast_to(mask == 0, image.shape)
        np.testing.assert_array_equal(out[known], image[known])
        error = [float(np.mean((a - image)[:, :, hole] ** 2)) for a in (out, base)]
        gains.append(10 * np.log10(error[1] / error[0]))
    assert min(gains) > 0, gains


def test_custom_slot_matches_the_unet_at_its_native_size(triton):
    image, mask = case(data.astronaut(), 2)  # 512x512, the custom export's fixed size
    unet = infer(triton, "inpaint_unet", image, mask)
    custom = infer(triton, "inpaint_custom", image, mask)
    assert np.abs(unet - custom).max() < 1e-4


def test_dropped_in_model_in_migan_conventions_serves_any_size(triton):
    """The second bring-your-own ONNX (conftest.byo_repository): uint8 in and out, 255 = known,
    dynamic size, served by the same shim; it agrees with inpaint_unet up to 8-bit rounding."""
    for rgb, seed in ((data.astronaut(), 3), (data.coffee()[:, :384], 4)):  # 512x512 and 400x384
        height, width = rgb.shape[:2]
        image = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        mask = block_mask(height, width, np.random.default_rng(seed))[None, None]
        unet = infer(triton, "inpaint_unet", image, mask)
        byo = infer(triton, "inpaint_migan", image, mask)
        assert byo.shape == image.shape
        assert np.abs(unet - byo).max() < 0.5 / 255 + 1e-4


def test_custom_slot_rejects_mismatched_inputs(triton):
    with pytest.raises(Exception, match="differ"):
        infer(triton, "inpaint_custom", np.zeros((1, 3, 32, 32), np.float32), np.zeros((1, 1, 16, 32), np.float32))
