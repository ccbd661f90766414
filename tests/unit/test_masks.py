"""The random mask generators: binary float32 holes of the requested size, reproducible by seed."""

import numpy as np
import pytest

from retouch.masks import MASK_KINDS, block_mask, random_mask, text_stroke_mask

H, W = 96, 160  # non-square, so a swapped axis shows


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks_are_binary_holes_of_the_right_shape(kind):
    for seed in range(8):
        mask = MASK_KINDS[kind](H, W, np.random.default_rng(seed))
        assert mask.shape == (H, W) and mask.dtype == np.float32
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert mask.mean() < 0.7, f"{kind} seed {seed} covers {mask.mean():.0%}"


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_same_seed_same_mask_and_seeds_differ(kind):
    make = MASK_KINDS[kind]
    a, b = make(H, W, np.random.default_rng(3)), make(H, W, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    others = [make(H, W, np.random.default_rng(s)) for s in range(4, 8)]
    assert any(not np.array_equal(a, o) for o in others)


def test_random_mask_is_never_empty_and_mixes_kinds():
    masks = [random_mask(64, 64, np.random.default_rng(s)) for s in range(40)]
    assert all(m.any() for m in masks)
    assert len({round(float(m.mean()), 3) for m in masks}) > 20
    only_blocks = random_mask(64, 64, np.random.default_rng(0), {"block": 1.0})
    ys, xs = np.nonzero(only_blocks)
    assert only_blocks.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)  # one filled rectangle


def test_block_size_follows_its_bounds():
    for seed in range(20):
        mask = block_mask(200, 100, np.random.default_rng(seed), size=(0.2, 0.3))
        ys, xs = np.nonzero(mask)
        assert 40 <= np.ptp(ys) + 1 <= 60 and 20 <= np.ptp(xs) + 1 <= 30


def test_text_mask_dilation_grows_the_strokes():
    thin = text_stroke_mask(128, 256, np.random.default_rng(5), lines=2, dilate=0)
    thick = text_stroke_mask(128, 256, np.random.default_rng(5), lines=2, dilate=3)
    assert thin.any() and (thick >= thin).all() and thick.sum() > 1.5 * thin.sum()
