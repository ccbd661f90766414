import numpy as np
import pytest

from retouch.tiling import (
    TileBlender,
    axis_starts,
    axis_weights,
    blend_tiles,
    cut_tiles,
    fit_tile,
    plan_tiles,
    seam_lines,
)


@pytest.mark.parametrize(
    "length,tile,overlap", [(100, 32, 8), (128, 128, 16), (129, 128, 16), (20, 64, 8), (517, 96, 0), (300, 64, 31)]
)
def test_tiles_cover_axis_and_stay_inside(length, tile, overlap):
    starts = axis_starts(length, tile, overlap)
    padded = max(length, tile)
    assert starts[0] == 0 and starts[-1] + tile == padded
    assert all(0 <= s <= padded - tile for s in starts)
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # overlaps >= overlap


@pytest.mark.parametrize("blend", ["cosine", "none"])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_weights_partition_unity(blend, scale):
    grid = plan_tiles(150, 150, 64, 16)
    total = np.zeros(grid.padded_width * scale)
    for s, w in zip(grid.xs, axis_weights(grid.xs, grid.tile, scale, blend)):
        total[s * scale : (s + grid.tile) * scale] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


@pytest.mark.parametrize("blend", ["cosine", "none"])
@pytest.mark.parametrize("shape", [(97, 203), (40, 50), (128, 128)])
def test_identity_model_roundtrip_is_exact(blend, shape):
    """Tiles that agree where they overlap must blend back to the untiled image."""
    rng = np.random.default_rng(0)
    image = rng.random((*shape, 3), dtype=np.float32)
    grid = plan_tiles(*shape, 64, 12)
    tiles = cut_tiles(image, grid)
    upscaled = tiles.repeat(2, axis=1).repeat(2, axis=2)  # nearest-neighbour "model"
    out = blend_tiles(upscaled, grid, 2, blend)
    np.testing.assert_allclose(out, image.repeat(2, 0).repeat(2, 1), atol=1e-6)


def test_seam_lines_where_stitching_can_step():
    grid = plan_tiles(100, 100, 64, 16)  # starts 0, 36
    assert seam_lines(grid, 2, "none") == ([72 + 28], [72 + 28])  # midline of the 28-px overlap
    assert seam_lines(grid, 2, "cosine") == ([72, 128], [72, 128])  # where each tile edge enters
    assert seam_lines(plan_tiles(50, 50, 64, 16), 2, "cosine") == ([], [])  # one tile, no seams


def test_overlap_must_be_smaller_than_tile():
    with pytest.raises(ValueError):
        plan_tiles(100, 100, 32, 32)


@pytest.mark.parametrize("shape", [(256, 256), (300, 200), (902, 600), (40, 70), (1000, 129)])
@pytest.mark.parametrize("tile, overlap", [(128, 16), (256, 16), (64, 8), (160, 96)])
def test_fit_tile_needs_no_more_tiles_and_keeps_the_overlap(shape, tile, overlap):
    side = fit_tile(*shape, tile, overlap)
    assert side <= tile and side % 16 == 0 or side == tile
    if max(shape) <= tile:
        assert side >= max(shape)  # one tile, planned with no overlap (upscale_pass)
        overlap = 0
    fitted, full = plan_tiles(*shape, side, overlap), plan_tiles(*shape, tile, overlap)
    assert fitted.count <= full.count
    for starts in (fitted.ys, fitted.xs):
        assert all(b - a <= side - overlap for a, b in zip(starts, starts[1:]))  # overlap kept
    assert fit_tile(256, 256, 128, 16) == 96 and fit_tile(256, 256, 256, 16) == 256


@pytest.mark.parametrize("margin", [0, 3])
@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 0, 1]])
def test_blender_in_any_arrival_order_equals_blend_tiles_bit_for_bit(order, margin):
    grid = plan_tiles(150, 170, 48, 12)
    rng = np.random.default_rng(5)
    tiles = rng.random((grid.count, 96, 96, 3), dtype=np.float32)
    want = blend_tiles(tiles, grid, 2, margin=margin)
    chunks = np.array_split(np.arange(grid.count), 4)
    blender = TileBlender(grid, 2, margin=margin)
    for i in order:
        blender.add(int(chunks[i][0]), tiles[chunks[i]])
    assert np.array_equal(blender.result(), want)


def test_blender_refuses_a_missing_tile():
    grid = plan_tiles(100, 100, 48, 12)
    blender = TileBlender(grid, 2)
    blender.add(1, np.zeros((grid.count - 1, 96, 96, 3), np.float32))
    with pytest.raises(ValueError):
        blender.result()


def test_cut_tiles_range_is_a_slice_of_all():
    grid = plan_tiles(150, 170, 48, 12)
    img = np.random.default_rng(1).random((150, 170, 3), dtype=np.float32)
    assert np.array_equal(cut_tiles(img, grid, 3, 7), cut_tiles(img, grid)[3:7])


def test_blender_keeps_the_margin_out_of_the_blend():
    """A tile's outer `margin` px at a shared edge are context only: whatever the model put there
    does not reach the output, and a flat image stays flat."""
    grid = plan_tiles(48, 100, 48, 20)
    assert grid.count == 3 and len(grid.xs) == 3 and len(grid.ys) == 1
    tiles = np.full((grid.count, 96, 96, 1), 0.5, np.float32)
    tiles[1, :, : 2 * 4] = 1e6  # the middle tile's left margin (4 input px at scale 2)
    tiles[1, :, -2 * 4 :] = 1e6  # and its right one
    blender = TileBlender(grid, 2, channels=1, margin=4)
    blender.add(0, tiles)
    assert np.allclose(blender.result(), 0.5)
