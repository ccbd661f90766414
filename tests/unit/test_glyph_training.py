"""The glyph segmenter's trainer (export/train_glyph_segmenter.py) learns on stored line crops and
resumes bit for bit: steps run in two sessions end where one session does."""

import numpy as np
import torch

from export.train_glyph_segmenter import GlyphNet, main


def shard(path, rng, ink: bool, crops: int = 6, width: int = 80):
    image = rng.integers(0, 256, (crops, 48, width, 3), dtype=np.uint8)
    box = np.zeros((crops, 48, width), np.uint8)
    box[:, 12:36, 8 : width - 8] = 255
    label = np.zeros_like(box)
    if ink:
        label[:, 18:30, 12 : width - 12 : 6] = 255
        image[label > 0] = 255
    np.savez_compressed(
        path,
        image=image,
        box=box,
        label=label,
        width=np.full(crops, width, np.int32),
        scene=np.full(crops, int(ink), np.uint8),
    )


def test_training_resumes_exactly(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        shard(tmp_path / f"shard-{i:04d}.npz", rng, ink=True)
    for i in range(2):
        shard(tmp_path / f"neg-{i:04d}.npz", rng, ink=False)
    common = ["--data", str(tmp_path), "--batch", "2", "--val-shards", "1"]
    main(common + ["--steps", "4", "--out", str(tmp_path / "once.pt")])
    main(common + ["--steps", "2", "--out", str(tmp_path / "half.pt")])
    main(common + ["--steps", "4", "--resume", str(tmp_path / "half.pt"), "--out", str(tmp_path / "twice.pt")])
    once, twice = (
        torch.load(tmp_path / "once.pt", weights_only=True),
        torch.load(tmp_path / "twice.pt", weights_only=True),
    )
    assert once["step"] == twice["step"] == 4
    for name, value in once["model"].items():
        assert torch.equal(value, twice["model"][name]), name
    net = GlyphNet()
    net.load_state_dict(once["model"])
    assert net(torch.zeros(1, 4, 48, 64)).shape == (1, 1, 48, 64)
    # --init: a new run from those weights (step 0, its own optimiser), which then trains on
    main(common + ["--steps", "1", "--init", str(tmp_path / "once.pt"), "--lr", "0", "--out", str(tmp_path / "i.pt")])
    started = torch.load(tmp_path / "i.pt", weights_only=True)
    assert started["step"] == 1
    for name, value in once["model"].items():
        assert torch.equal(value, started["model"][name]), name  # lr 0: still the weights it started from


def test_labels_are_the_ink_grown_by_label_grow():
    from export.glyph_data import crops

    rgb = np.zeros((60, 120, 3), np.uint8)
    ink = np.zeros((60, 120), bool)
    ink[28:32, 30:90] = True
    quad = np.array([[20, 20], [100, 20], [100, 40], [20, 40]], np.float32)
    areas = [int((next(crops(rgb, ink, quad[None], grow))[2] > 127).sum()) for grow in (0, 1, 2)]
    assert 0 < areas[0] < areas[1] < areas[2]
