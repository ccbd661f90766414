import numpy as np
from skimage import data

from retouch.seams import seam_score
from retouch.tiling import blend_tiles, cut_tiles, plan_tiles, seam_lines


def test_natural_image_scores_about_one():
    img = data.astronaut()
    rows = list(range(40, 500, 64))
    assert 0.8 < seam_score(img, rows, rows) < 1.2


def test_brightness_step_at_border_scores_high():
    img = data.astronaut().astype(np.int16)
    img[:, 256:] += 12  # a 12-grey-level step at one column: a typical exposure seam
    img = np.clip(img, 0, 255).astype(np.uint8)
    assert seam_score(img, [], [256]) > 2.0
    assert seam_score(img, [], [200]) < 1.3  # the same image, away from the step


def test_flat_image_is_one_and_no_lines_is_one():
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert seam_score(flat, [32], [32]) == 1.0
    assert seam_score(data.astronaut(), [], []) == 1.0


def test_tile_dependent_model_scores_high_unblended_and_low_blended():
    """A 'model' whose output drifts from tile to tile (each tile its own gain, as a model that
    normalises per input does) leaves seams that the score sees with hard stitching and no
    overlap, and does not see once the overlaps are blended."""
    img = data.astronaut()[:256, :256].astype(np.float32)
    gains = np.random.default_rng(0).uniform(0.93, 1.07, size=64)

    def model(tiles):
        return tiles.repeat(2, 1).repeat(2, 2) * gains[: len(tiles), None, None, None]

    def run(overlap, blend):
        grid = plan_tiles(256, 256, 64, overlap)
        out = blend_tiles(model(cut_tiles(img, grid)), grid, 2, blend)
        return seam_score(np.clip(out, 0, 255), *seam_lines(grid, 2, blend), scale=2)

    assert run(0, "none") > 1.5
    assert run(32, "cosine") < 1.2
