"""The training script runs end to end on tiny crops, and its weights load as plain tensors."""
import json

import numpy as np
import torch

from export import train_inpainter
from export.inpaint_nets import InpaintUNet
from export.train_inpainter import inpaint_loss, learning_rate, make_batch, train


def test_a_few_steps_train_and_change_the_weights(photos):
    images = [np.asarray(p) for p in photos.values()]
    state, log = train(steps=4, minutes=2, batch=2, crop=48, images=images, log_every=2, progress=False)
    assert log["steps"] == 4 and [h["step"] for h in log["history"]] == [2, 4]
    assert all(np.isfinite(h["total"]) and h["total"] > 0 for h in log["history"])
    assert state["residual.weight"].abs().sum() > 0  # it started at exactly zero
    net = InpaintUNet()
    net.load_state_dict(state)


def test_same_seed_same_weights(photos):
    images = [np.asarray(p) for p in photos.values()]
    a, _ = train(steps=2, minutes=2, batch=2, crop=32, images=images, progress=False)
    b, _ = train(steps=2, minutes=2, batch=2, crop=32, images=images, progress=False)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_writes_weights_and_log(tmp_path, monkeypatch, photos):
    monkeypatch.setattr(train_inpainter.inpaint_data, "catalog", lambda: [])  # no image decoding here
    monkeypatch.setattr(train_inpainter.inpaint_data, "split", lambda _: ([], []))
    real_train = train_inpainter.train
    monkeypatch.setattr(train_inpainter, "train", lambda *a, **k: real_train(
        *a, images=[np.asarray(p) for p in photos.values()], sources=[{"key": "test"}], progress=False))
    weights, log = tmp_path / "w.pt", tmp_path / "log.json"
    assert train_inpainter.main(["--steps", "2", "--crop", "32", "--batch", "2", "--weights", str(weights),
                                 "--log", str(log)]) == 0
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert set(state) == set(InpaintUNet().state_dict())
    written = json.loads(log.read_text())
    assert written["steps"] == 2 and written["train_images"] == [{"key": "test"}]


def test_batches_and_loss():
    rgb = (np.random.default_rng(0).random((100, 120, 3)) * 255).astype(np.uint8)
    image, mask = make_batch([rgb], 3, 40, np.random.default_rng(1))
    assert image.shape == (3, 3, 40, 40) and mask.shape == (3, 1, 40, 40)
    assert 0 <= image.min() and image.max() <= 1 and mask.sum() > 0
    losses = inpaint_loss(image, image, mask)
    assert float(losses["total"]) == 0.0
    outside_only = image + 0.5 * (1 - mask)  # errors outside the hole are not the net's to fix
    assert float(inpaint_loss(outside_only, image, mask)["l1"]) == 0.0
    assert float(inpaint_loss(image + 0.1 * mask, image, mask)["l1"]) > 0.09


def test_learning_rate_warms_up_and_decays():
    assert learning_rate(1.0, 0.0) < learning_rate(1.0, 0.02) == 1.0
    assert learning_rate(1.0, 1.0) == 0.05 and learning_rate(1.0, 0.5) < 1.0
