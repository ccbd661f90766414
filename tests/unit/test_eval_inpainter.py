"""In-hole metrics and the evaluation harness behind export/reports/inpaint_unet.md."""
import numpy as np

from export.eval_inpainter import evaluate, evaluation_set, headroom, hole_psnr, hole_ssim, telea


def test_metrics_look_only_inside_the_hole():
    rng = np.random.default_rng(0)
    target = rng.random((64, 64, 3)).astype(np.float32)
    hole = np.zeros((64, 64), np.float32)
    hole[20:40, 20:40] = 1
    wrong_outside = target.copy()
    wrong_outside[hole == 0] = 0
    assert hole_psnr(wrong_outside, target, hole) > 100
    off = target + 0.1 * hole[..., None]
    assert abs(hole_psnr(off, target, hole) - 20.0) < 1e-3  # MSE 0.01 -> 20 dB
    assert hole_ssim(target, target, hole) > 0.999 > hole_ssim(off * 0 + 0.5, target, hole)


def test_evaluation_is_reproducible_and_no_method_sees_the_hole(photos):
    images = list(photos.items())[:2]
    cases = evaluation_set(images, crops=2, size=64)
    again = evaluation_set(images, crops=2, size=64)
    assert len(cases) == 2 * 2 * 2
    assert all(np.array_equal(a["hole"], b["hole"]) and np.array_equal(a["crop"], b["crop"])
               for a, b in zip(cases, again))

    def peek(image, hole):
        assert not image[hole > 0].any()
        return image
    result = evaluate({"telea": telea, "zeros": peek}, cases)
    for kind in ("text", "block"):
        assert result["summary"][kind]["telea"]["psnr_mean"] > result["summary"][kind]["zeros"]["psnr_mean"]
        assert result["summary"][kind]["telea"]["cases"] == 4


def test_headroom_oracle_beats_its_base_more_the_finer_it_sees(photos):
    cases = evaluation_set(list(photos.items())[:2], crops=2, size=64)
    bound = headroom(cases, telea, sigmas=(2, 8))
    base = evaluate({"telea": telea}, cases)["summary"]
    for kind in ("text", "block"):
        assert bound[kind]["2"] > bound[kind]["8"] > base[kind]["telea"]["psnr_pooled"]
