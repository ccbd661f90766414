"""The inpainting networks, in torch: the weight-free push-pull fill and the UNet that refines it.

Both export to ONNX with the same contract: IMAGE float32 [N,3,H,W] RGB in [0,1] and MASK float32
[N,1,H,W] (1 = hole, 0 = known, soft values allowed) -> OUTPUT float32 [N,3,H,W], dynamic N, H, W,
and OUTPUT == IMAGE exactly wherever MASK == 0. The UNet calls the very same fill module, so the
fill served alone and the fill inside the UNet cannot drift apart.

Only pooling, bilinear resize, convolutions and arithmetic: ops that onnxruntime and TensorRT run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FILL_LEVELS = 12  # 2**12 = 4096: any image up to 4096 px pools down to one pixel
EPS = 1e-6
WIDTHS = (16, 32, 64, 96, 128)  # the served UNets' channels per stage (enc0 .. bottleneck)


def composite(image: torch.Tensor, mask: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """Known pixels from image, holes from filled; mask == 0 gives image bit for bit."""
    return image * (1.0 - mask) + filled * mask


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 mean pooling to ceil(H/2) x ceil(W/2); an odd edge's missing pixels count as zero, i.e.
    as unknown in the premultiplied pyramid. (ceil_mode pooling would do it too, but onnxruntime
    and PyTorch divide its partial windows differently.)"""
    return F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2)


class PushPullFill(nn.Module):
    """Push-pull pyramid fill with harmonic smoothing on the way up.

    Push: premultiplied colour (image * known) and the known weight are average-pooled by 2 down to
    one pixel. Pull: from the coarsest level up, each level's own colour is blended over the
    bilinear upsampling of the level below by its known weight, then a few Jacobi steps (3x3 mean
    inside the unknown part) relax it towards a harmonic (Laplace) fill. That makes linear gradients
    come out nearly exact, where plain push-pull leaves blocky plateaus. Full resolution gets fewer
    steps: it costs as much as all coarser levels together and adds little (+0.1 dB in-hole).
    """

    def __init__(self, levels: int = FILL_LEVELS, smooth_steps: int = 4, fine_smooth_steps: int = 1):
        super().__init__()
        self.levels, self.smooth_steps, self.fine_smooth_steps = levels, smooth_steps, fine_smooth_steps

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return composite(image, mask, self.pull(image, mask))

    def pull(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The fill everywhere, before compositing (what a model that refines it starts from)."""
        known = 1.0 - mask
        colours, weights = [image * known], [known]
        for _ in range(self.levels):
            colours.append(_halve(colours[-1]))
            weights.append(_halve(weights[-1]))
        filled = colours[-1] / torch.clamp(weights[-1], min=EPS)
        for level in reversed(range(self.levels)):
            colour, free = colours[level], 1.0 - weights[level]
            up = F.interpolate(filled, size=colour.shape[-2:], mode="bilinear", align_corners=False)
            filled = colour + free * up  # premultiplied "over": own colour where known
            for _ in range(self.smooth_steps if level else self.fine_smooth_steps):
                mean = F.avg_pool2d(filled, 3, stride=1, padding=1, count_include_pad=False)
                filled = colour + free * mean
        return filled


class GatedConv(nn.Module):
    """Gated convolution (Yu et al., DeepFill v2): features * sigmoid(learned gate)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, 3, stride, padding=dilation, dilation=dilation)

    def forward(self, x):
        feature, gate = self.conv(x).chunk(2, dim=1)
        return F.leaky_relu(feature, 0.2) * torch.sigmoid(gate)


class ConvAct(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2))


class InpaintUNet(nn.Module):
    """Compact UNet predicting a residual over the push-pull fill.

    Input: image with the hole blanked, the mask and the fill (7 channels). Gated convolutions in
    the encoder decide per pixel how much to trust the fill; dilated ones at 1/16 scale see about
    the whole 256 px crop. Stride-2 convs give ceil(H/2) and the decoder resizes to each skip's
    exact size, so any H and W work; quality is best near the 256 px training crops.
    The last conv starts at zero, so an untrained net returns exactly the fill.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = WIDTHS,
        fill: PushPullFill | None = None,
        hint_channels: int = 0,
    ):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.fill = fill or PushPullFill()
        self.widths = tuple(widths)
        self.hint_channels = hint_channels  # extra input planes (a coarse fill), see CoarseToFineUNet
        self.enc0 = GatedConv(7 + hint_channels, w0)
        self.enc1 = nn.Sequential(GatedConv(w0, w1, stride=2), GatedConv(w1, w1))
        self.enc2 = nn.Sequential(GatedConv(w1, w2, stride=2), GatedConv(w2, w2))
        self.enc3 = nn.Sequential(GatedConv(w2, w3, stride=2), GatedConv(w3, w3))
        self.bottleneck = nn.Sequential(
            GatedConv(w3, w4, stride=2), GatedConv(w4, w4, dilation=2), GatedConv(w4, w4, dilation=4)
        )
        self.dec3 = ConvAct(w4 + w3, w3)
        self.dec2 = ConvAct(w3 + w2, w2)
        self.dec1 = ConvAct(w2 + w1, w1)
        self.dec0 = ConvAct(w1 + w0, w0)
        self.residual = nn.Conv2d(w0, 3, 1)
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)

    @staticmethod
    def _up_cat(x, skip):
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([x, skip], dim=1)

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        hint: torch.Tensor | None = None,
        base: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`base`: a fill to refine instead of the push-pull one (ClassicalRefineUNet)."""
        pulled = self.fill.pull(image, mask) if base is None else base
        filled = composite(image, mask, pulled)  # the fill's own output
        planes = [image * (1.0 - mask), mask, filled] + ([hint] if self.hint_channels else [])
        x0 = self.enc0(torch.cat(planes, dim=1) * 2.0 - 1.0)
        x1 = self.enc1(x0)
        x2 = self.enc2(x1)
        x3 = self.enc3(x2)
        y = self.bottleneck(x3)
        y = self.dec3(self._up_cat(y, x3))
        y = self.dec2(self._up_cat(y, x2))
        y = self.dec1(self._up_cat(y, x1))
        y = self.dec0(self._up_cat(y, x0))
        refined = torch.clamp(pulled + self.residual(y), 0.0, 1.0)  # composited once, also for soft masks
        return composite(image, mask, refined)


def half_size(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Image at ceil(H/2) x ceil(W/2) (premultiplied mean over known pixels, so hole colours do not
    leak) and the hole grown to any half-pixel that touches it."""
    known = 1.0 - mask
    weight = _halve(known)
    small = _halve(image * known) / torch.clamp(weight, min=EPS)
    small_mask = F.max_pool2d(F.pad(mask, (0, 1, 0, 1)), 2)
    return small, small_mask


class CoarseToFineUNet(nn.Module):
    """A coarse UNet fills the hole at half resolution (twice the context per receptive field); its
    upsampled fill enters the full-resolution UNet as 3 extra input planes (`hint`).

    `from_unet` starts both from one trained InpaintUNet with the hint planes' weights at zero, so
    the pair begins exactly where that network is and training can only add what the coarse view
    buys. Same contract as InpaintUNet: (IMAGE, MASK) -> OUTPUT, known pixels bit-exact.
    """

    def __init__(self, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        self.coarse = InpaintUNet(widths)
        self.fine = InpaintUNet(widths, hint_channels=3)

    @classmethod
    def from_unet(cls, state: dict, widths: tuple[int, ...] = WIDTHS) -> CoarseToFineUNet:
        net = cls(widths)
        net.coarse.load_state_dict(state)
        fine = dict(state)
        weight = fine["enc0.conv.weight"]
        fine["enc0.conv.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], 3, *weight.shape[2:])], 1)
        net.fine.load_state_dict(fine)
        return net

    def stages(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(small mask, coarse fill at half size, final output): the training loss scores the coarse
        fill against half_size(truth) in the small mask."""
        small, small_mask = half_size(image, mask)
        coarse = self.coarse(small, small_mask)
        up = F.interpolate(coarse, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return small_mask, coarse, self.fine(image, mask, hint=composite(image, mask, up))

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.stages(image, mask)[-1]


class ClassicalRefineUNet(InpaintUNet):
    """The UNet refining a classical fill (FSR_FAST on strokes, PatchMatch elsewhere: inpaint's auto
    route) that the caller computes: (IMAGE, MASK, BASE) -> OUTPUT, a residual over BASE in the hole.

    `from_unet` takes a trained InpaintUNet's features with the residual head at zero, so it starts
    out returning exactly the classical fill and training can only add what the net sees beyond it.
    """

    def forward(self, image: torch.Tensor, mask: torch.Tensor, base: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(image, mask, base=base)

    @classmethod
    def from_unet(cls, state: dict, widths: tuple[int, ...] = WIDTHS) -> ClassicalRefineUNet:
        net = cls(widths)
        net.load_state_dict(state)
        nn.init.zeros_(net.residual.weight)
        nn.init.zeros_(net.residual.bias)
        return net


def widths_of(state: dict) -> tuple[int, ...]:
    """An InpaintUNet state_dict's widths, read from its encoder's feature channels."""
    names = ("enc0", "enc1.0", "enc2.0", "enc3.0", "bottleneck.0")
    return tuple(state[f"{name}.conv.weight"].shape[0] // 2 for name in names)


def build_net(state: dict) -> InpaintUNet | CoarseToFineUNet:
    """The network a plain state_dict was saved from (a pair's keys start with 'coarse.')."""
    net = CoarseToFineUNet() if any(k.startswith("coarse.") for k in state) else InpaintUNet(widths_of(state))
    net.load_state_dict(state)
    return net


def _unet_layout(widths: tuple[int, ...]) -> dict[str, tuple[list[int], list[int]]]:
    """Per conv weight of an InpaintUNet: (output channel blocks, input channel blocks). A gated
    conv's output is two blocks (features, gates); a decoder's input is (upsampled, skip)."""
    w0, w1, w2, w3, w4 = widths
    gated = {
        "enc0": ([7], w0),
        "enc1.0": ([w0], w1),
        "enc1.1": ([w1], w1),
        "enc2.0": ([w1], w2),
        "enc2.1": ([w2], w2),
        "enc3.0": ([w2], w3),
        "enc3.1": ([w3], w3),
        "bottleneck.0": ([w3], w4),
        "bottleneck.1": ([w4], w4),
        "bottleneck.2": ([w4], w4),
    }
    layout = {f"{name}.conv": ([cout, cout], cin) for name, (cin, cout) in gated.items()}
    decoders = {"dec3.0": ([w4, w3], w3), "dec2.0": ([w3, w2], w2), "dec1.0": ([w2, w1], w1), "dec0.0": ([w1, w0], w0)}
    layout |= {name: ([cout], cin) for name, (cin, cout) in decoders.items()}
    layout["residual"] = ([3], [w0])
    return layout


def _positions(old: list[int], new: list[int]) -> torch.Tensor:
    """Where each old channel sits among the new ones: block by block, at the front of its block."""
    starts = [sum(new[:i]) for i in range(len(new))]
    return torch.cat([torch.arange(size) + start for size, start in zip(old, starts, strict=True)])


def widen(state: dict, net: InpaintUNet, old_widths: tuple[int, ...]) -> dict:
    """`state` (an InpaintUNet of `old_widths`) grown to `net`'s widths without changing its output:
    the old weights keep their channels, the new channels keep `net`'s random init for their inputs
    and get zero weight wherever a later layer reads them, so training starts where `state` is."""
    new_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    old_layout, new_layout = _unet_layout(old_widths), _unet_layout(net.widths)
    for name, (new_out, new_in) in new_layout.items():
        old_out, old_in = old_layout[name]
        rows, cols = _positions(old_out, new_out), _positions(old_in, new_in)
        weight, bias = new_state[f"{name}.weight"], new_state[f"{name}.bias"]
        unread = torch.ones(weight.shape[1], dtype=torch.bool)
        unread[cols] = False
        weight[:, unread] = 0.0
        weight[rows[:, None], cols[None, :]] = state[f"{name}.weight"]
        bias[rows] = state[f"{name}.bias"]
    return new_state
