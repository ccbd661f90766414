"""In-hole metrics and the evaluation harness behind export/reports/inpaint_unet.md."""

import numpy as np

from export import eval_inpainter
from export.eval_inpainter import (
    MASKS,
    cached,
    classical,
    evaluate,
    evaluation_set,
    fsr_best_subset,
    headroom,
    hole_psnr,
    hole_ssim,
    render_ledger,
    render_report,
    telea,
)


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
    assert len(cases) == 2 * len(MASKS) * 2 and set(MASKS) == {"text", "block", "object"}
    assert all(
        np.array_equal(a["hole"], b["hole"]) and np.array_equal(a["crop"], b["crop"]) for a, b in zip(cases, again)
    )

    def peek(image, hole):
        assert not image[hole > 0].any()
        return image

    result = evaluate({"telea": telea, "zeros": peek}, cases, only={"zeros": {0, 1}})
    for kind in MASKS:
        assert result["summary"][kind]["telea"]["psnr_pooled"] > 10
        assert result["summary"][kind]["telea"]["cases"] == 4 and result["summary"][kind]["telea"]["ms_median"] >= 0
    assert result["subset_cases"] == [0, 1] and result["subset_summary"]["text"]["telea"]["cases"] == 2
    assert sum(r["method"] == "zeros" for r in result["rows"]) == 2  # `only` limits a slow method


def test_classical_fills_only_the_hole_and_the_cache_replays_it(photos, tmp_path):
    case = evaluation_set(list(photos.items())[:1], crops=1, size=64)[1]
    image, hole = case["crop"] * (1 - case["hole"][..., None]), case["hole"]
    out = classical("FSR_FAST")(image, hole)
    patched = classical("PatchMatch")(image, hole)
    assert np.abs(patched - image)[hole == 0].max() <= 1 / 255 + 1e-6 and np.array_equal(
        patched, classical("PatchMatch")(image, hole)
    )
    assert out.shape == image.shape and np.abs(out - case["crop"])[hole > 0].mean() < 0.2
    assert np.abs(out - image)[hole == 0].max() <= 1 / 255 + 1e-6  # 0 = missing in xphoto's mask
    calls = []
    method = cached("x", lambda i, h: calls.append(1) or out, tmp_path)
    (first, _), (second, _) = method(image, hole), method(image, hole)
    assert calls == [1] and np.array_equal(first, second)


def test_fsr_best_subset_spreads_over_images_per_kind(photos):
    cases = evaluation_set(list(photos.items())[:3], crops=2, size=48)
    chosen = fsr_best_subset(cases, 2)
    assert len(chosen) == 2 * len(MASKS)
    assert all(cases[i]["draw"] == 0 for i in chosen)
    assert {cases[i]["image"] for i in chosen if cases[i]["kind"] == "text"} == {cases[0]["image"], cases[-1]["image"]}


def test_report_and_ledger_render(photos, monkeypatch):
    monkeypatch.setattr(eval_inpainter.inpaint_data, "catalog", lambda: [])
    cases = evaluation_set(list(photos.items())[:2], crops=1, size=48)
    methods = {"served": telea, "fast_fill": telea, "telea": telea, "fsr_fast": telea, "fsr_best": telea}
    result = evaluate(methods, cases, only={"fsr_best": set(fsr_best_subset(cases, 1))})
    result |= {
        "held_out_images": [],
        "crop": 48,
        "crops_per_image_and_kind": 1,
        "seed": 0,
        "networks": {"served": "w.pt"},
        "command": "python -m export.eval_inpainter",
        "json": "e.json",
    }
    report = render_report(result)
    assert "## Goal check" in report and "xphoto FSR_BEST" in report and "never below the fast fill: met" in report
    assert "| network |" in report
    assert "| run |" in render_ledger(result)


def test_headroom_oracle_beats_its_base_more_the_finer_it_sees(photos):
    cases = evaluation_set(list(photos.items())[:2], crops=2, size=64)
    bound = headroom(cases, telea, sigmas=(2, 8))
    base = evaluate({"telea": telea}, cases)["summary"]
    for kind in ("text", "block"):
        assert bound[kind]["2"] > bound[kind]["8"] > base[kind]["telea"]["psnr_pooled"]


def test_a_refine_checkpoint_is_scored_on_auto_s_classical_pick(photos, tmp_path):
    """auto_classical runs the fill inpaint's auto route picks (FSR_FAST for a stroke, PatchMatch for
    a block); a ClassicalRefineUNet checkpoint is scored on that fill, which it starts out equal to,
    and its time includes the base's."""
    import torch

    from export.inpaint_nets import ClassicalRefineUNet, InpaintUNet
    from export.train_inpainter import FORMAT

    picked = []

    def fill(name):
        def run(image, hole):
            picked.append(name)
            return telea(image, hole), 5.0

        return run

    auto = eval_inpainter.auto_classical({n: fill(n) for n in ("FSR_FAST", "PatchMatch")})
    image = np.asarray(next(iter(photos.values())))[:64, :64].astype(np.float32) / 255
    stroke, block = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32)
    stroke[30:32, 5:60] = 1
    block[16:48, 16:48] = 1
    auto(image, stroke), auto(image, block)
    assert picked == ["FSR_FAST", "PatchMatch"]

    widths = (4, 4, 8, 8, 8)
    net = ClassicalRefineUNet.from_unet(InpaintUNet(widths).state_dict(), widths)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save(
        {"format": FORMAT, "config": {"arch": "refine", "widths": list(widths)}, "ema": state}, tmp_path / "r.pt"
    )
    loaded = eval_inpainter.load_net(tmp_path / "r.pt")
    assert isinstance(loaded, ClassicalRefineUNet)
    out, ms = eval_inpainter.torch_method(loaded, auto)(image * (1 - block[..., None]), block)
    base, _ = auto(image * (1 - block[..., None]), block)
    assert np.abs(out - base).max() <= 0.5 / 255 + 1e-6 and ms >= 5.0
