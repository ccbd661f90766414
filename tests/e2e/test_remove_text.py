"""`remove_text` and `clean` through a real tritonserver, on text rendered onto real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data
from test_detect_text import detect, encode
from text_scenes import Scene, make_scene, score

from retouch.remove_text import RemoveTextSettings
from retouch_client import InvalidInputError

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# RETOUCH_UPDATE_DOCS=1 writes the README's before/after picture instead of a temporary copy.
PICTURE = ROOT / "docs" / "images" / "remove_text_before_after.png"


def pixels(result) -> np.ndarray:
    return np.asarray(result.image.convert("RGB"))


def psnr_in(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    mse = np.mean((a[where].astype(np.float64) - b[where]) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def flat_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[hole] = rgb.reshape(-1, 3).mean(axis=0).round()
    return out


PHOTOS = {
    "astronaut": data.astronaut()[:384, :384],
    "coffee": data.coffee()[:384, :512],
    "chelsea": data.chelsea(),
    "rocket": data.rocket()[:384, :512],
}


@pytest.fixture(scope="module")
def scenes():
    return [
        make_scene(f"{name}-{layout}", np.ascontiguousarray(photo), seed=seed, layout=layout, lines=4)
        for seed, ((name, photo), layout) in enumerate(
            (p, layout) for p in PHOTOS.items() for layout in ("sparse", "dense")
        )
    ]


@pytest.fixture(scope="module")
def removed(client, scenes):
    return [client.remove_text(scene.rgb) for scene in scenes]


def test_text_is_gone_and_the_holes_are_filled(triton, server, scenes, removed, tmp_path):
    lines = found_before = found_after = painted_lines = residual_painted = 0
    gains, outcomes, segmented, trimmed, reads = [], [], [], [], []
    for scene, result in zip(scenes, removed):
        out, mask = pixels(result), result.outputs["OUTPUT_MASK"]
        report = result.report["remove_text"]
        assert out.shape == scene.rgb.shape and mask.shape == scene.rgb.shape[:2]
        before = score(scene, np.asarray(report["boxes"], np.float32).reshape(-1, 4, 2), mask, 0)
        boxes, _, again_mask, _ = detect(triton, encode(Image.fromarray(out)), url=server["grpc"])
        after = score(scene, boxes, again_mask, 0)
        lines, found_before, found_after = lines + after.lines, found_before + before.found, found_after + after.found
        # Against the text-free photo, inside the hole: far better than one flat colour.
        hole = mask > 0
        photo = PHOTOS[scene.name.split("-")[0]]
        gains.append(psnr_in(out, photo, hole) - psnr_in(flat_fill(scene.rgb, hole), photo, hole))
        outcomes.append(report["outcome"])
        # The report's verdict agrees with what it measured.
        assert report["outcome"] in ("accepted", "needs_review")
        assert report["mask_coverage"] > 0 and len(report["mask_sha256"]) == 64
        if report["outcome"] == "accepted":
            assert report["residual_lines"] == 0 and report["inpaint"]["verdict"] == "accepted"
            assert not report["candidates"]
        else:
            assert report["review_reasons"] and (
                report["residual_lines"] > 0 or report["candidates"] or report["inpaint"]["verdict"] == "needs_review"
            )
        # Pixels outside the painted glyphs come back bit for bit (native-resolution fill).
        np.testing.assert_array_equal(out[~hole], scene.rgb[~hole])
        # Lines left for review are reported as candidates; the painted ones are gone.
        painted_lines += sum(1 for line in scene.lines if (hole & line.ink).sum() >= 0.5 * line.ink.sum())
        residual_painted += sum(
            1
            for line in scene.lines
            if (hole & line.ink).sum() >= 0.5 * line.ink.sum() and score_line(line, boxes, out.shape[:2])
        )
        assert [m["name"] for m in result.report["models"]][0] == "text_detector"
        # Painted lines are shaped by the glyph segmenter, which the report then names.
        segmented += [line for line in report["lines"] if line.get("mask") == "segmenter"]
        trimmed += [line["trimmed"] for line in report["lines"] if "trimmed" in line]
        assert ("glyph_segmenter" in [m["name"] for m in result.report["models"]]) == (report["segmented_lines"] > 0)
        assert report["segmented_lines"] >= sum(line["kind"] in ("glyph", "box") for line in report["lines"])
        # Every detected line is read; a painted one read as writing, and the report says what it read.
        assert report["read_lines"] == len(report["boxes"]) > 0
        assert ("text_recognizer" in [m["name"] for m in result.report["models"]]) == (report["read_lines"] > 0)
        for line in report["lines"]:
            if line["kind"] in ("glyph", "box"):
                assert len(set(line["read"].replace(" ", ""))) >= 2 and line["read_confidence"] >= 0.5, line
        words = {w.lower() for line in scene.lines for w in line.text.split()}
        reads += [w.lower() in words for line in report["lines"] for w in line["read"].split()]
    print(
        f"\nremove_text: {lines} rendered lines; detector found {found_before} before, {found_after} after; "
        f"{painted_lines} painted, {residual_painted} of them found again; "
        f"in-hole PSNR gain over a flat fill (dB) {np.round(gains, 2).tolist()}; outcomes {outcomes}; "
        f"box lines shaped by the segmenter {[line['box_share'] for line in segmented]}, "
        f"pixels trimmed off glyph lines {trimmed}, words read exactly {np.mean(reads):.2f}"
    )
    assert segmented and all(line["kind"] == "box" and 0 < line["box_share"] < 1 for line in segmented)
    # The recogniser reads most rendered words exactly (a misread letter still counts against it).
    assert np.mean(reads) >= 0.5, np.mean(reads)
    assert found_before >= 0.95 * lines
    assert painted_lines >= 0.6 * lines  # the rest are low-contrast lines left for review (docs/text.md)
    assert residual_painted <= 0.05 * painted_lines
    assert np.median(gains) >= 3.0, gains
    save_before_after(scenes[0].rgb, removed[0], tmp_path)


def score_line(line, boxes, shape) -> bool:
    """Whether detected boxes cover half of the line's rectangle (text_scenes' `found`)."""
    one = Scene("line", np.zeros((*shape, 3), np.uint8), [line])
    return score(one, boxes, np.zeros(shape, np.uint8), 0).found == 1


def save_before_after(before: np.ndarray, result, tmp_path: Path) -> None:
    after, mask = pixels(result), result.outputs["OUTPUT_MASK"]
    h, w = before.shape[:2]
    panel = Image.new("RGB", (3 * w + 20, h + 24), "white")
    for i, (img, title) in enumerate([(before, "input"), (np.stack([mask] * 3, -1), "mask"), (after, "remove_text")]):
        panel.paste(Image.fromarray(img), (i * (w + 10), 24))
        ImageDraw.Draw(panel).text((i * (w + 10) + 4, 6), title, fill="black")
    target = PICTURE if os.environ.get("RETOUCH_UPDATE_DOCS") == "1" else tmp_path / PICTURE.name
    target.parent.mkdir(parents=True, exist_ok=True)
    panel.save(target)


def test_identical_requests_identical_bytes(client, scenes, removed):
    again = client.remove_text(scenes[1].rgb)
    assert again.data == removed[1].data
    assert again.report["remove_text"]["mask_sha256"] == removed[1].report["remove_text"]["mask_sha256"]


def test_no_text_returns_the_image_unchanged(client):
    sky = np.ascontiguousarray(data.astronaut()[:120, 300:500])  # a patch with no text
    result = client.remove_text(sky)
    assert result.report["remove_text"]["outcome"] == "no_text"
    np.testing.assert_array_equal(pixels(result), sky)
    assert not result.outputs["OUTPUT_MASK"].any()


@pytest.mark.parametrize("shape", ["rings", "squares"])
def test_a_row_of_symbols_the_rule_takes_for_text_is_left_alone(client, shape):
    """A row of rings or squares on a plain ground splits like letters, and the rule alone paints
    it; the recogniser reads one symbol repeated ('00000000', 'OOOOOOO0'), so the photo comes back
    bit for bit, the line left for review as `unreadable`."""
    import cv2

    photo = np.full((240, 420, 3), (205, 200, 190), np.uint8)
    for i in range(8):
        x, r = 30 + i * 22, 8
        if shape == "rings":
            cv2.circle(photo, (x, 120), r, (40, 40, 40), 3, cv2.LINE_AA)
        else:
            cv2.rectangle(photo, (x - r, 120 - r), (x + r, 120 + r), (40, 40, 40), 3, cv2.LINE_AA)
    unread = client.remove_text(photo, mask={"min_read_chars": 0, "promote_read_chars": 0})
    assert unread.report["remove_text"]["line_kinds"] == {"glyph": 1}  # the rule alone paints it
    assert unread.outputs["OUTPUT_MASK"].any()
    result = client.remove_text(photo)
    report = result.report["remove_text"]
    np.testing.assert_array_equal(pixels(result), photo)
    assert report["outcome"] == "needs_review" and report["review_reasons"] == ["uncertain_lines"]
    (line,) = report["lines"]
    assert line["kind"] == "uncertain" and line["reason"].startswith("unreadable: 1 different characters")


TEXT_FREE = {
    "coffee": data.coffee(),
    "chelsea": data.chelsea(),
    "brick": data.brick(),
    "grass": data.grass(),
    "gravel": data.gravel(),
    "hubble": data.hubble_deep_field()[:400, :600],
    "coins": data.coins(),  # rows of coins read as large lettering: over max_text_coverage, left for review
}


@pytest.mark.parametrize("name", sorted(TEXT_FREE))
def test_text_free_photos_come_back_pixel_identical(client, name):
    photo = np.ascontiguousarray(TEXT_FREE[name])
    photo = photo if photo.ndim == 3 else np.stack([photo] * 3, axis=-1)
    result = client.remove_text(photo)
    report = result.report["remove_text"]
    np.testing.assert_array_equal(pixels(result), photo)
    assert report["outcome"] in ("no_text", "needs_review") and not result.outputs["OUTPUT_MASK"].any()
    if report["outcome"] == "needs_review":  # candidates listed, or too much of the photo: nothing painted
        assert report["candidates"] or report["text_coverage"] > RemoveTextSettings().max_text_coverage
        assert set(report["review_reasons"]) <= {"uncertain_lines", "text_coverage"}


def test_a_dense_caption_is_edited_not_refused(client):
    photo = np.ascontiguousarray(data.coffee()[:300, :400])
    scene = make_scene(
        "coffee-dense-caption", photo, seed=11, layout="dense", sizes=(24, 28), lines=8, contrasts=("high",)
    )
    result = client.remove_text(scene.rgb)  # the boxes cover about a third of the photo
    report = result.report["remove_text"]
    assert report["outcome"] in ("accepted", "needs_review")
    assert report["mask_coverage"] > 0.03 and report["line_kinds"].get("glyph", 0) >= 4
    hole = result.outputs["OUTPUT_MASK"] > 0
    np.testing.assert_array_equal(pixels(result)[~hole], scene.rgb[~hole])

    # Under a max_text_coverage it exceeds, the same photo is left as sent, with the reason.
    strict = client.remove_text(scene.rgb, max_text_coverage=report["text_coverage"] / 2)
    assert strict.report["remove_text"]["outcome"] == "needs_review"
    assert "text_coverage" in strict.report["remove_text"]["review_reasons"]
    np.testing.assert_array_equal(pixels(strict), scene.rgb)
    assert not strict.outputs["OUTPUT_MASK"].any()


def test_boxes_found_again_are_filled_once_more(client):
    """Outlined captions whose glyph masks leave ghosts the detector finds again over the painted
    mask: those boxes are filled once more, whole, and the report says so."""
    scene = make_scene(
        "astronaut-outline", data.astronaut(), seed=1, layout="sparse", sizes=(22, 40), contrasts=("high",),
        lines=3, styles=("outline",),
    )  # fmt: skip
    once = client.remove_text(scene.rgb, repaint_residual=False)
    first = once.report["remove_text"]
    assert first["residual_lines"] >= 1 and "repaint" not in first
    result = client.remove_text(scene.rgb)
    report = result.report["remove_text"]
    assert report["repaint"]["lines"] == first["residual_lines"] and report["residual_lines"] < first["residual_lines"]
    hole, first_hole = result.outputs["OUTPUT_MASK"] > 0, once.outputs["OUTPUT_MASK"] > 0
    assert (hole | ~first_hole).all() and hole.sum() > first_hole.sum()  # the mask painted is the union
    assert report["mask_sha256"] != first["mask_sha256"] and report["mask_coverage"] > first["mask_coverage"]
    out = pixels(result)
    np.testing.assert_array_equal(out[~hole], scene.rgb[~hole])
    assert not (np.any(out != pixels(once), axis=2) & ~hole).any()
    assert report["repaint"]["verdict"] in ("accepted", "needs_review") and report["repaint"]["windows"] >= 1


def test_lines_the_detector_misses_are_painted_after_a_second_look(client):
    """Two 'daily' lines text_detector does not box at all: the second look (text_detector_small on
    the result) finds them off the painted mask, reads them, and paints them; nothing else moves."""
    scene = make_scene("hubble-sparse", data.hubble_deep_field(), seed=0, layout="sparse", lines=5)
    once = client.remove_text(scene.rgb, second_look=False)
    result = client.remove_text(scene.rgb)
    first, report = once.report["remove_text"], result.report["remove_text"]
    assert "second_look" not in first and "text_detector_small" not in [m["name"] for m in once.report["models"]]
    look = report["second_look"]
    assert look["detector"] == "ppocrv6_small" and look["painted"] and look["read_as_text"] == len(look["lines"]) >= 2
    assert all(line["read_confidence"] >= 0.9 for line in look["lines"])
    assert "text_detector_small" in [m["name"] for m in result.report["models"]]
    hole, first_hole = result.outputs["OUTPUT_MASK"] > 0, once.outputs["OUTPUT_MASK"] > 0
    missed = [line for line in scene.lines if (first_hole & line.ink).sum() < 0.5 * line.ink.sum()]
    found = [line for line in missed if (hole & line.ink).sum() >= 0.9 * line.ink.sum()]
    assert len(found) >= 2, [line.text for line in missed]
    out, before = pixels(result), pixels(once)
    np.testing.assert_array_equal(out[~hole], scene.rgb[~hole])
    assert (hole | ~first_hole).all() and report["mask_coverage"] > first["mask_coverage"]
    # the found lines' pixels come back nearer the photo without the text
    ink = np.any([line.ink for line in found], axis=0)
    photo = data.hubble_deep_field()
    assert psnr_in(out, photo, ink) > psnr_in(before, photo, ink) + 6


def test_settings_are_checked(client, scenes):
    with pytest.raises(InvalidInputError, match="'inpaint.route' must be one of"):
        client.remove_text(scenes[0].rgb, inpaint={"route": "magic"})
    with pytest.raises(InvalidInputError, match="unknown setting 'detect.treshold'; known detect settings"):
        client.remove_text(scenes[0].rgb, detect={"treshold": 0.3})


def test_clean_removes_text_and_objects_then_upscales(client, triton, server, scenes):
    scene = scenes[2]  # chelsea, sparse
    objects = np.zeros(scene.rgb.shape[:2], np.uint8)
    objects[200:230, 40:80] = 255  # an "object" the caller marks
    result = client.clean(scene.rgb, objects, upscale={"scale": 2})
    out = pixels(result)
    h, w = scene.rgb.shape[:2]
    assert out.shape == (2 * h, 2 * w, 3)
    report = result.report
    assert report["steps"] == ["remove_text", "upscale"]  # inpaint first, then upscale
    assert report["upscale"]["seam_score"] < report["upscale"]["settings"]["seam_threshold"]
    assert result.outputs["OUTPUT_MASK"][210, 60] == 255
    # The painted lines are gone: the detector, run on the result brought back to the input's size,
    # finds none of them (lines left for review are the report's candidates).
    small = np.asarray(Image.fromarray(out).resize((w, h), Image.BICUBIC))
    boxes, _, _, _ = detect(triton, encode(Image.fromarray(small)), url=server["grpc"])
    painted = result.outputs["OUTPUT_MASK"] > 0  # at the input's size
    gone = [line for line in scene.lines if (painted & line.ink).sum() >= 0.5 * line.ink.sum()]
    assert gone and not any(score_line(line, boxes, (h, w)) for line in gone)
    with pytest.raises(InvalidInputError, match="unknown settings part"):
        client.clean(scene.rgb, upscale={"scale": 2}, denoise={})


def test_served_recognizer_reads_as_onnxruntime_does(triton, scenes):
    """text_recognizer through Triton gives onnxruntime's probabilities on real line crops (two
    lines padded to one width, one batch), and they decode to the rendered words."""
    import json

    import onnxruntime as ort
    import tritonclient.grpc as grpcclient

    from retouch.reading import READ_HEIGHT, ctc_read, read_input

    model_dir = ROOT / "model_repository" / "text_recognizer" / "1"
    characters = json.loads((model_dir / "model.json").read_text())["characters"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as served (config.pbtxt)
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    lines = [line for scene in scenes for line in scene.lines if line.style == "plain" and line.angle == 0][:2]
    crops = [read_input(scene_of(scenes, line).rgb, line.quad) for line in lines]
    width = -(-max(c.shape[2] for c in crops) // 64) * 64
    batch = np.zeros((len(crops), 3, READ_HEIGHT, width), np.float32)
    for row, crop in enumerate(crops):
        batch[row, :, :, : crop.shape[2]] = crop
    inputs = [grpcclient.InferInput("INPUT", list(batch.shape), "FP32")]
    inputs[0].set_data_from_numpy(batch)
    served = triton.infer("text_recognizer", inputs).as_numpy("OUTPUT")
    local = session.run(["OUTPUT"], {"INPUT": batch})[0]
    assert served.shape == local.shape and served.shape[2] == len(characters) + 1
    np.testing.assert_allclose(served, local, rtol=0, atol=1e-6)
    texts = [ctc_read(probs, characters)[0] for probs in served]
    assert sum(t.replace(" ", "") == line.text.replace(" ", "") for t, line in zip(texts, lines)) >= 1, texts


def scene_of(scenes: list[Scene], line) -> Scene:
    return next(scene for scene in scenes if any(other is line for other in scene.lines))


def test_line_verdicts_are_counted_on_the_metrics_port(server, client, scenes):
    """retouch_text_lines_total counts each line of a response by what became of it, as its report
    says (retouch.reading.line_verdict)."""
    from collections import Counter

    from test_observability import scrape

    from retouch.reading import LINE_VERDICTS, line_verdict

    def counts() -> dict[str, float]:
        samples = scrape(server)
        return {
            v: samples.get(("retouch_text_lines_total", (("operation", "remove_text"), ("verdict", v))), 0.0)
            for v in LINE_VERDICTS
        }

    before = counts()
    report = client.remove_text(scenes[2].rgb).report["remove_text"]
    after = counts()
    want = Counter(line_verdict(line["kind"], line.get("reason")) for line in report["lines"])
    assert {v: after[v] - before[v] for v in LINE_VERDICTS} == {v: float(want[v]) for v in LINE_VERDICTS}
    assert sum(want.values()) == len(report["boxes"]) > 0
