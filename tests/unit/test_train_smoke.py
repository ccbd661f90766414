"""The training script runs end to end on tiny crops, resumes bit for bit, and its checkpoints and
weights load as plain tensors (torch.load(weights_only=True))."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from export import train_inpainter
from export.inpaint_nets import InpaintUNet
from export.train_inpainter import DEFAULTS, Trainer, inpaint_loss, learning_rate, make_batch, run

TINY = DEFAULTS | {"steps": 8, "batch": 2, "crop": 32, "warmup": 2, "widths": [4, 4, 8, 8, 8]}


@pytest.fixture
def images(photos):
    return [np.asarray(p) for p in photos.values()]


def _trainer(images, cfg=TINY):
    return Trainer(dict(cfg), images, [f"img{i}" for i in range(len(images))])


def test_a_few_steps_train_and_change_the_weights(images, tmp_path):
    trainer = _trainer(images)
    assert run(trainer, tmp_path / "c.pt", minutes=5, stop_at=4, log_every=2, progress=False) == "steps"
    assert [h["step"] for h in trainer.history] == [2, 4]
    assert all(np.isfinite(h["total"]) and h["total"] > 0 for h in trainer.history)
    assert trainer.net.state_dict()["residual.weight"].abs().sum() > 0  # it started at exactly zero


def test_n_steps_equal_half_then_resume_half_bit_for_bit(images, tmp_path):
    straight = _trainer(images)
    run(straight, tmp_path / "straight.pt", minutes=5, stop_at=4, log_every=1, progress=False)

    first = _trainer(images)
    run(first, tmp_path / "split.pt", minutes=5, stop_at=2, log_every=1, progress=False)
    ckpt = train_inpainter.load_checkpoint(tmp_path / "split.pt")  # weights_only=True inside
    assert ckpt["step"] == 2
    resumed = Trainer(ckpt["config"], images, ckpt["train_images"])
    resumed.load_state(ckpt)
    run(resumed, tmp_path / "split.pt", minutes=5, stop_at=4, log_every=1, progress=False)

    a, b = straight.state(), resumed.state()
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    for index, state in a["optimizer"]["state"].items():
        assert all(torch.equal(v, b["optimizer"]["state"][index][k]) for k, v in state.items())
    assert [h["total"] for h in a["history"]] == [h["total"] for h in b["history"]]
    assert json.loads(a["rng"]["numpy"]) == json.loads(b["rng"]["numpy"])
    assert [(s["from_step"], s["to_step"]) for s in b["segments"]] == [(0, 2), (2, 4)]


def test_cli_new_run_resume_and_export(tmp_path, monkeypatch, images):
    monkeypatch.setattr(
        train_inpainter,
        "load_training_images",
        lambda keys=None, progress=True: ([f"img{i}" for i in range(len(images))], images),
    )
    monkeypatch.setattr(train_inpainter, "RUN_LOG_DIR", tmp_path / "runs")
    ckpt = tmp_path / "t.pt"
    common = ["--checkpoint", str(ckpt), "--minutes", "5"]
    assert (
        train_inpainter.main(
            ["--name", "t", "--steps", "4", "--crop", "32", "--batch", "2", "--warmup", "1", "--stop-at", "2"]
            + ["--mask-mix", '{"block": 1, "object": 2}', *common]
        )
        == 0
    )
    assert train_inpainter.load_checkpoint(ckpt)["step"] == 2
    assert train_inpainter.load_checkpoint(ckpt)["config"]["mask_mix"] == {"block": 1, "object": 2}
    for flag in (["--lr", "1"], ["--mask-mix", '{"text": 1}']):  # a resumed run keeps its config
        with pytest.raises(SystemExit):
            train_inpainter.main(["--resume", str(ckpt), *flag, *common])
    for bad in ('{"blok": 1}', '{"text": -1}', '{"text": 0}', "[1]"):
        with pytest.raises(SystemExit, match="--mask-mix"):
            train_inpainter.main(["--name", "u", "--mask-mix", bad, "--checkpoint", str(tmp_path / "u.pt")])
    assert train_inpainter.main(["--resume", str(ckpt), *common]) == 0
    assert train_inpainter.load_checkpoint(ckpt)["step"] == 4
    log = json.loads((tmp_path / "runs" / "t.json").read_text())
    assert log["step"] == 4 and len(log["segments"]) == 2 and log["config"]["crop"] == 32
    out = tmp_path / "w.pt"
    assert train_inpainter.main(["--export-weights", str(ckpt), str(out)]) == 0
    InpaintUNet().load_state_dict(torch.load(out, map_location="cpu", weights_only=True))


def test_coarse_to_fine_arch_trains_both_stages_from_a_unet(images, tmp_path):
    cfg = TINY | {"arch": "coarse_to_fine"}
    source = InpaintUNet(widths=tuple(cfg["widths"]))
    torch.save(source.state_dict(), tmp_path / "unet.pt")
    trainer = _trainer(images, cfg)
    trainer.init_weights(tmp_path / "unet.pt")
    hint = trainer.net.fine.enc0.conv.weight[:, 7:].clone()
    assert not hint.any()  # starts as the UNet it came from
    run(trainer, tmp_path / "c.pt", minutes=5, stop_at=2, log_every=1, progress=False)
    assert trainer.net.fine.enc0.conv.weight[:, 7:].abs().sum() > 0
    assert trainer.net.coarse.residual.weight.abs().sum() > 0
    assert all("stage_l1" in h for h in trainer.history)


def test_refine_arch_starts_at_the_classical_fill_and_learns_a_residual_over_it(images, tmp_path):
    """--arch refine: the teacher's fill is the net's base; from a UNet it starts with a zero head,
    so its first step's L1 equals the classical fill's own (fill_l1 is the base's for this arch)."""
    cfg = TINY | {"arch": "refine"}
    source = InpaintUNet(widths=tuple(cfg["widths"]))
    with torch.no_grad():
        source.residual.weight.fill_(0.1)  # a trained head, which from_unet must zero
    torch.save(source.state_dict(), tmp_path / "unet.pt")
    trainer = _trainer(images, cfg)
    trainer.init_weights(tmp_path / "unet.pt")
    assert not trainer.net.residual.weight.any()
    run(trainer, tmp_path / "c.pt", minutes=5, stop_at=2, log_every=1, progress=False)
    first = trainer.history[0]
    assert first["l1"] == pytest.approx(first["fill_l1"], abs=1e-7) and first["l1"] > 0
    assert trainer.net.residual.weight.abs().sum() > 0
    # A next run starts from this one's checkpoint as it is (its EMA weights, head included).
    follow = _trainer(images, cfg)
    follow.init_weights(tmp_path / "c.pt")
    for key, value in train_inpainter.load_checkpoint(tmp_path / "c.pt")["ema"].items():
        assert torch.equal(follow.net.state_dict()[key], value)
    assert follow.net.residual.weight.abs().sum() > 0


def test_a_wider_run_starts_from_a_narrower_checkpoint_with_the_same_output(images, tmp_path):
    """--widths above --init's: the checkpoint is widened without changing its fill, and the new
    channels learn (their outgoing weights start at zero)."""
    cfg = TINY | {"arch": "refine"}
    narrow = _trainer(images, cfg)
    run(narrow, tmp_path / "n.pt", minutes=5, stop_at=2, log_every=1, progress=False)
    wide = _trainer(images, cfg | {"widths": [6, 8, 8, 12, 12]})
    wide.init_weights(tmp_path / "n.pt")
    image, mask = make_batch(images, cfg, np.random.default_rng(3))
    base = torch.rand_like(image)
    narrow.net.load_state_dict(narrow.ema)
    with torch.no_grad():
        assert torch.allclose(wide.net(image, mask, base), narrow.net(image, mask, base), atol=1e-6)
    unread = wide.net.dec0[0].weight[:, 12:].clone()  # (8 upsampled, 6 skip): the skip from enc0's new 2
    assert not unread.any()
    run(wide, tmp_path / "w.pt", minutes=5, stop_at=2, log_every=1, progress=False)
    assert wide.net.dec0[0].weight[:, 12:].abs().sum() > 0
    with pytest.raises(SystemExit, match="--widths"):  # narrowing would change the function
        _trainer(images, cfg | {"widths": [2, 4, 8, 8, 8]}).init_weights(tmp_path / "n.pt")


def test_batches_and_loss():
    rgb = (np.random.default_rng(0).random((100, 120, 3)) * 255).astype(np.uint8)
    image, mask = make_batch([rgb], TINY | {"batch": 3, "crop": 40}, np.random.default_rng(1))
    assert image.shape == (3, 3, 40, 40) and mask.shape == (3, 1, 40, 40)
    assert 0 <= image.min() and image.max() <= 1 and mask.sum() > 0
    losses = inpaint_loss(image, image, mask)
    assert float(losses["total"]) == 0.0
    outside_only = image + 0.5 * (1 - mask)  # errors outside the hole are not the net's to fix
    assert float(inpaint_loss(outside_only, image, mask)["l1"]) == 0.0
    assert float(inpaint_loss(image + 0.1 * mask, image, mask)["l1"]) > 0.09
    assert "ssim" not in losses  # off unless asked for: older runs resume with the same loss
    with_ssim = inpaint_loss(image, image, mask, ssim_weight=0.5)
    assert float(with_ssim["ssim"]) == pytest.approx(0.0, abs=1e-5)
    blurred = F.avg_pool2d(image, 5, stride=1, padding=2)  # same means, less structure
    assert float(inpaint_loss(blurred, image, mask, ssim_weight=0.5)["ssim"]) > 0.05


def test_learning_rate_warms_up_then_decays_by_step():
    cfg = DEFAULTS | {"lr": 1.0, "warmup": 10, "steps": 110}
    assert learning_rate(cfg, 1) < learning_rate(cfg, 5) < learning_rate(cfg, 10) == 1.0
    assert learning_rate(cfg, 60) == pytest.approx(0.525) and learning_rate(cfg, 110) == pytest.approx(0.05)
    assert learning_rate(cfg, 500) == pytest.approx(0.05)


def test_distillation_pulls_towards_the_classical_teacher_and_resumes_exactly(images, tmp_path):
    """--teacher-weight adds L1 towards a classical fill of each crop's hole (FSR_FAST for strokes,
    PatchMatch for the rest): both deterministic, so the bit-for-bit resume still holds."""
    cfg = TINY | {"teacher_weight": 0.5}
    straight = _trainer(images, cfg)
    run(straight, tmp_path / "straight.pt", minutes=5, stop_at=2, log_every=1, progress=False)
    assert all(h["teacher"] > 0 for h in straight.history)
    first = _trainer(images, cfg)
    run(first, tmp_path / "split.pt", minutes=5, stop_at=1, log_every=1, progress=False)
    ckpt = train_inpainter.load_checkpoint(tmp_path / "split.pt")
    resumed = Trainer(ckpt["config"], images, ckpt["train_images"])
    resumed.load_state(ckpt)
    run(resumed, tmp_path / "split.pt", minutes=5, stop_at=2, log_every=1, progress=False)
    assert [h["total"] for h in straight.history] == [h["total"] for h in resumed.history]

    image, mask = torch.rand(2, 3, 48, 48), torch.zeros(2, 1, 48, 48)
    mask[0, 0, 10:13, 4:44] = 1  # a stroke
    mask[1, 0, 12:36, 12:36] = 1  # a block
    taught = train_inpainter.teacher_fills(image, mask, "auto")
    known = mask.expand(-1, 3, -1, -1) == 0
    assert (taught - image).abs()[
        known
    ].max() <= 2 / 255  # known pixels kept, to a level or two (the loss ignores them)
    assert (taught - image).abs()[~known].mean() > 0  # the hole was filled
