"""glyph_dev --compare: two runs' per-scene figures, pooled as the dev set pools them, and the
per-scene wins and losses a median hides."""

import json

import numpy as np
import pytest

from export.glyph_dev import compare, pooled_psnr


def scene(name, sse, n=3000, residual_new=0.0):
    psnr = float(10 * np.log10(255.0**2 / (sse / n)))
    return {"scene": name, "n": n, "served_sse": sse, "served_psnr": psnr, "residual_new": residual_new}


def write(path, rows):
    path.write_text(json.dumps(rows))
    return path


def test_compare_counts_scenes_helped_and_hurt(tmp_path):
    before = [scene("a", 3000.0), scene("b", 30000.0), scene("c", 300.0, residual_new=0.5)]
    # a: error halved (+3.01 dB), b: unchanged, c: ten times the error (-10 dB) but a tenth of a's
    after = [scene("a", 1500.0), scene("b", 30000.0), scene("c", 3000.0)]
    out = compare(write(tmp_path / "before.json", before), write(tmp_path / "after.json", after))
    n = 9000
    assert out["pooled"] == [pooled_psnr(33300.0, n), pooled_psnr(34500.0, n)]
    # The median stays put (a before, c after) while one scene gains 3 dB and another loses 10.
    assert out["median"] == [round(before[0]["served_psnr"], 2), round(after[2]["served_psnr"], 2)] == [48.13, 48.13]
    assert (out["better"], out["worse"], out["scenes"]) == (1, 1, 3)
    assert out["mean_change_db"] == pytest.approx((3.01 - 10.0) / 3, abs=0.01)
    assert out["residual_new_mean"] == [round(0.5 / 3, 4), 0.0]
    assert [m[0] for m in out["movers"]] == ["c", "a", "b"]  # largest change first


def test_compare_refuses_runs_of_different_scenes(tmp_path):
    a = write(tmp_path / "a.json", [scene("a", 1.0)])
    b = write(tmp_path / "b.json", [scene("b", 1.0)])
    with pytest.raises(SystemExit, match="different scenes"):
        compare(a, b)
