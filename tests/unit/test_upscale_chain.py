"""retouch.upscale with a stand-in model (nearest-neighbour at the model's scale): chains per mode,
denoise, any output scale, alpha and 16-bit values carried through, settings aliases."""

import asyncio

import numpy as np
import pytest

from retouch.errors import InvalidInput
from retouch.settings import MODE_TILING, UpscaleSettings, parse_settings
from retouch.upscale import UPSCALERS, model_chain, upscale

CALLS = []


async def nearest(model, batch):
    CALLS.append((model, batch.shape))
    s = UPSCALERS[model]
    return batch.repeat(s, axis=2).repeat(s, axis=3)


def run(rgb, deep=None, alpha_in=None, **settings):
    CALLS.clear()
    return asyncio.run(upscale(rgb, parse_settings(UpscaleSettings, settings), nearest, deep=deep, alpha=alpha_in))


@pytest.mark.parametrize(
    "mode,target,denoise,chain",
    [
        ("faithful", 2, 0, ("upscaler_waifu2x_photo_x2",)),
        ("faithful", 4, 2, ("upscaler_waifu2x_photo_x2_denoise2", "upscaler_waifu2x_photo_x2")),
        ("faithful", 3, 0, ("upscaler_waifu2x_photo_x2",) * 2),
        ("faithful", 1, 1, ("upscaler_waifu2x_photo_x2_denoise1",)),
        ("photo", 2, 0, ("upscaler_realesrgan_x4plus",)),
        ("photo", 4, 0, ("upscaler_realesrgan_x4plus",)),
        ("photo", 8, 0, ("upscaler_realesrgan_x4plus", "upscaler_waifu2x_photo_x2")),
        ("anime", 2, 0, ("upscaler_animevideov3_x2",)),
        ("anime", 3.5, 0, ("upscaler_animevideov3_x4",)),
        ("anime", 6, 0, ("upscaler_animevideov3_x4", "upscaler_animevideov3_x2")),
    ],
)
def test_chain_reaches_the_next_native_scale(mode, target, denoise, chain):
    assert model_chain(mode, target, denoise) == chain


def test_aliases_and_mode_defaults_are_resolved_in_the_echo():
    s = parse_settings(UpscaleSettings, {"mode": "conservative"}).resolved()
    assert (s.mode, s.tile, s.overlap, s.margin) == ("faithful", *MODE_TILING["faithful"])
    assert parse_settings(UpscaleSettings, {"mode": "creative"}).resolved().mode == "anime"
    assert parse_settings(UpscaleSettings, {"mode": "photo", "overlap": 20}).resolved().margin == 9
    assert parse_settings(UpscaleSettings, {"mode": "photo", "tile": 48}).resolved().overlap == 23


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"mode": "photo", "denoise": 1}, "applies to mode 'faithful'"),
        ({"denoise": 4}, "denoise"),
        ({"outscale": 9}, "outscale"),
        ({"outscale": 0.5}, "outscale"),
        ({"mode": "photo", "overlap": 40, "margin": 20}, "margin"),
        ({"alpha": "nearest"}, "alpha"),
        ({"keep_metadata": "no"}, "keep_metadata"),
    ],
)
def test_bad_settings_say_what_to_fix(bad, message):
    with pytest.raises(InvalidInput, match=message):
        parse_settings(UpscaleSettings, bad)


@pytest.mark.parametrize("outscale,size", [(3, (60, 90)), (3.5, (70, 105)), (1, (20, 30)), (8, (160, 240))])
def test_outscale_gives_exactly_that_size(outscale, size):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out, figures, deep, alpha = run(rgb, outscale=outscale)
    assert out.shape == (*size, 3) and deep is None and alpha is None
    assert figures["output_scale"] == outscale and figures["chain_scale"] >= outscale
    assert (figures["resized"] is None) == (figures["chain_scale"] == outscale)


def test_flat_image_stays_flat_through_the_resize():
    out, *_ = run(np.full((20, 30, 3), 77, np.uint8), outscale=2.5)
    assert (out == 77).all()


def test_alpha_is_upscaled_by_the_model_unless_flat():
    rgb = np.zeros((20, 30, 3), np.uint8)
    alpha = np.zeros((20, 30), np.uint16)
    alpha[5:15, 10:20] = 65535
    out, figures, _, up = run(rgb, alpha_in=alpha, scale=2)
    assert up.shape == (40, 60) and figures["alpha"] == "model"
    np.testing.assert_array_equal(up, alpha.repeat(2, 0).repeat(2, 1))  # the stand-in model is nearest
    assert sum(1 for m, _ in CALLS) == 2  # one pass for colour, one for alpha
    _, figures, _, up = run(rgb, alpha_in=np.full((20, 30), 1000, np.uint16), scale=4)
    assert figures["alpha"] == "flat" and (up == 1000).all() and len(CALLS) == 2  # x4: two x2 passes, colour only
    _, figures, _, _ = run(rgb, alpha_in=alpha, scale=2, alpha="bicubic")
    assert figures["alpha"] == "bicubic" and len(CALLS) == 1


def test_16bit_values_go_through_the_models_at_16_bits():
    ramp = np.repeat(np.linspace(0, 65535, 30).astype(np.uint16)[None, :, None], 20, 0).repeat(3, 2)
    rgb = ((ramp.astype(np.uint32) + 128) // 257).astype(np.uint8)
    out, figures, deep, _ = run(rgb, deep=ramp, scale=2)
    assert figures["bits"] == 16 and deep.dtype == np.uint16
    np.testing.assert_array_equal(deep, ramp.repeat(2, 0).repeat(2, 1))


def test_tiles_use_the_mode_default_tile():
    rgb = np.zeros((300, 200, 3), np.uint8)
    run(rgb, mode="photo")
    tile = MODE_TILING["photo"][0]
    assert all(shape[2:] == (tile, tile) for _, shape in CALLS)


def test_an_image_smaller_than_the_tile_gets_a_tile_its_size():
    run(np.zeros((40, 70, 3), np.uint8), mode="photo", scale=4)
    assert [shape for _, shape in CALLS] == [(1, 3, 80, 80)]  # fit_tile: 16 px steps
    run(np.zeros((20, 20, 3), np.uint8), mode="faithful", scale=4)  # second pass: 40x40 -> 48
    assert [shape[2:] for _, shape in CALLS] == [(32, 32), (48, 48)]
