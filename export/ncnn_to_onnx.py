"""Convert small ncnn super-resolution nets (.param + .bin) to ONNX, without torch.

Only the layer types our upscalers use are supported; anything else raises, so a new model
cannot be exported half-right. Semantics follow ncnn's CPU reference layers (src/layer/*.cpp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PARAM_MAGIC = 7767517
# ncnn ModelBin: a 4-byte tag precedes each "auto type" blob (conv weights); bias/slope blobs are raw fp32.
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32 = 0
OPSET = 17
IR_VERSION = 8  # opset 17 needs IR >= 8; keep it low so Triton 24.10's onnxruntime (1.19) loads it


@dataclass
class Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, object] = field(default_factory=dict)


def _number(text: str):
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_param(path) -> list[Layer]:
    """Parse an ncnn text .param file (LF or CRLF) into layers in file order."""
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if int(lines[0][0]) != PARAM_MAGIC:
        raise ValueError(f"{path}: not an ncnn param file (magic {lines[0][0]})")
    layer_count = int(lines[1][0])
    layers = []
    for tok in lines[2:]:
        n_in, n_out = int(tok[2]), int(tok[3])
        blobs = tok[4 : 4 + n_in + n_out]
        params = {}
        for kv in tok[4 + n_in + n_out :]:
            key, value = kv.split("=", 1)
            key = int(key)
            if key <= -23300:  # array param: id = -key - 23300, value "count,v1,v2,..."
                params[-key - 23300] = [_number(v) for v in value.split(",")[1:]]
            else:
                params[key] = _number(value)
        layers.append(Layer(tok[0], tok[1], blobs[:n_in], blobs[n_in:], params))
    if len(layers) != layer_count:
        raise ValueError(f"{path}: header says {layer_count} layers, found {len(layers)}")
    return layers


def load_weights(layers: list[Layer], path) -> dict[str, list[np.ndarray]]:
    """Read the .bin blobs in ncnn load order; returns {layer name: [fp32 arrays]}.

    Fails unless the whole file is consumed, which catches a wrong tag/size assumption.
    """
    buf = Path(path).read_bytes()
    pos = 0

    def take(nbytes):
        nonlocal pos
        if pos + nbytes > len(buf):
            raise ValueError(f"{path}: needs byte {pos + nbytes} of {len(buf)}; layer/weight layout mismatch")
        pos += nbytes
        return buf[pos - nbytes : pos]

    def raw(n):
        return np.frombuffer(take(4 * n), "<f4").astype(np.float32)

    def tagged(n):
        tag = int.from_bytes(take(4), "little")
        if tag == TAG_FP16:
            return np.frombuffer(take((2 * n + 3) // 4 * 4), "<f2", n).astype(np.float32)  # padded to 4 bytes
        if tag == TAG_FP32:
            return raw(n)
        kind = "int8" if tag == TAG_INT8 else "quantized/unknown"
        raise ValueError(f"{path}: {kind} blob (tag {tag:#010x}) at byte {pos - 4} is not supported")

    weights = {}
    for layer in layers:
        p = layer.params
        if layer.type in ("Convolution", "Deconvolution"):
            if p.get(8, 0):
                raise ValueError(f"{layer.name}: int8 scale terms are not supported")
            weights[layer.name] = [tagged(p[6])] + ([raw(p[0])] if p.get(5, 0) else [])
        elif layer.type == "PReLU":
            weights[layer.name] = [raw(p.get(0, 0) or 1)]
    if pos != len(buf):
        raise ValueError(f"{path}: read {pos} of {len(buf)} bytes; layer/weight layout mismatch")
    return weights


class _Graph:
    """Tiny emitter: nodes, initializers, and ncnn blob name -> ONNX tensor name."""

    def __init__(self):
        self.nodes, self.inits, self.blob = [], [], {}

    def const(self, name, array, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def add(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _pads(p, layer):
    # ncnn: 4=left, 15=right(=left), 14=top(=left), 16=bottom(=top); negatives mean SAME-style auto pad
    left = p.get(4, 0)
    right, top = p.get(15, left), p.get(14, left)
    bottom = p.get(16, top)
    if min(left, right, top, bottom) < 0:
        raise ValueError(f"{layer.name}: auto (SAME-style) padding is not supported")
    return [top, left, bottom, right]


def _conv(g, layer, x, w):
    p = layer.params
    kw = p[1]
    kh = p.get(11, kw)
    out = p[0]
    attrs = dict(
        kernel_shape=[kh, kw],
        dilations=[p.get(12, p.get(2, 1)), p.get(2, 1)],
        strides=[p.get(13, p.get(3, 1)), p.get(3, 1)],
        pads=_pads(p, layer),
    )
    name = layer.name
    if layer.type == "Convolution":
        if p.get(18, 0.0):
            raise ValueError(f"{name}: non-zero pad value is not supported")
        weight = w[0].reshape(out, -1, kh, kw)
        op = "Conv"
    else:
        # ncnn stores deconv weights as [out, in, kh, kw]; ONNX ConvTranspose wants [in, out, kh, kw]
        weight = w[0].reshape(out, -1, kh, kw).transpose(1, 0, 2, 3)
        op = "ConvTranspose"
        # ncnn crops the full deconv output by the pads, which is exactly ONNX's ConvTranspose pads
        if p.get(18, 0) or p.get(19, 0) or p.get(20, 0) or p.get(21, 0):
            raise ValueError(f"{name}: output padding / fixed output size is not supported")
    inputs = [x, g.const(name + ".weight", weight)] + ([g.const(name + ".bias", w[1])] if len(w) > 1 else [])
    y = g.add(op, inputs, name, **attrs)
    act = p.get(9, 0)
    if act == 0:
        return y
    if act == 1:
        return g.add("Relu", [y], name + ".relu")
    if act == 2:
        return g.add("LeakyRelu", [y], name + ".lrelu", alpha=float(p.get(10, [0.0])[0]))
    raise ValueError(f"{name}: fused activation {act} is not supported")


def _keys_cubic(t, a=-0.75):
    """Keys cubic kernel weight at distance t (ncnn's and ONNX's bicubic, a=-0.75)."""
    t = abs(t)
    return (a + 2) * t**3 - (a + 3) * t**2 + 1 if t <= 1 else a * (t**3 - 5 * t**2 + 8 * t - 4)


def _interp(g, layer, x, channels):
    p = layer.params
    kind = p.get(0, 0)
    if p.get(3, 0) or p.get(4, 0) or p.get(5, 0):
        raise ValueError(f"{layer.name}: fixed/dynamic output size is not supported")
    if kind == 3 and p.get(1) == p.get(2) == 0.5 and not p.get(6, 0):
        # Half-size bicubic samples every output at frac 0.5 between inputs 2i and 2i+1: a fixed 4x4
        # stride-2 depthwise conv after 1 px edge clamp. Same numbers as Resize, ~7x faster in onnxruntime.
        taps = np.array([_keys_cubic(d) for d in (1.5, 0.5, 0.5, 1.5)], np.float32)
        kernel = np.broadcast_to(np.outer(taps, taps), (channels, 1, 4, 4))
        pads = g.const(layer.name + ".pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)
        x = g.add("Pad", [x, pads], layer.name + ".clamp", mode="edge")
        return g.add(
            "Conv",
            [x, g.const(layer.name + ".kernel", kernel)],
            layer.name,
            group=channels,
            kernel_shape=[4, 4],
            strides=[2, 2],
        )
    scales = g.const(layer.name + ".scales", [1, 1, p.get(1, 1.0), p.get(2, 1.0)])
    if kind == 1:
        # ncnn nearest: src = floor(dst / scale)
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif kind == 3 and not p.get(6, 0):
        # ncnn bicubic: half-pixel centres, edge clamp, Keys a=-0.75, no antialiasing
        attrs = dict(mode="cubic", cubic_coeff_a=-0.75, exclude_outside=0, coordinate_transformation_mode="half_pixel")
    else:
        raise ValueError(f"{layer.name}: interp type {kind} / align_corner is not supported")
    return g.add("Resize", [x, "", scales], layer.name, **attrs)


_BINARY = {0: "Add", 1: "Sub", 2: "Mul", 3: "Div"}
_ELTWISE = {0: "Mul", 1: "Add", 2: "Max"}


def _eltwise(g, layer, xs):
    """ncnn Eltwise: PROD, SUM (optionally with per-input coefficients) or MAX over all inputs."""
    p = layer.params
    op = _ELTWISE.get(p.get(0, 1))
    if op is None:
        raise ValueError(f"{layer.name}: eltwise op {p.get(0)} is not supported")
    coeffs = p.get(1, [])
    if coeffs and op != "Add":
        raise ValueError(f"{layer.name}: coefficients are only supported for SUM")
    if coeffs:
        xs = [
            x if c == 1.0 else g.add("Mul", [x, g.const(f"{layer.name}.c{i}", c)], f"{layer.name}.mul{i}")
            for i, (x, c) in enumerate(zip(xs, coeffs))
        ]
    y = xs[0]
    for i, x in enumerate(xs[1:], 1):
        y = g.add(op, [y, x], layer.name if i == len(xs) - 1 else f"{layer.name}.{i}")
    return y


def _binary(g, layer, xs):
    p = layer.params
    op = _BINARY.get(p.get(0, 0))
    if op is None:
        raise ValueError(f"{layer.name}: binary op {p.get(0)} is not supported")
    if p.get(1, 0):  # with_scalar: second operand is param 2
        xs = [xs[0], g.const(layer.name + ".b", p.get(2, 0.0))]
    return g.add(op, xs, layer.name)


def build_onnx(
    layers: list[Layer],
    weights: dict[str, list[np.ndarray]],
    *,
    output_blob: str,
    prepad: int = 0,
    crop: int = 0,
    graph_name: str = "upscaler",
    doc: str = "",
) -> onnx.ModelProto:
    """Build an ONNX model INPUT [N,3,H,W] -> OUTPUT from parsed ncnn layers.

    prepad: edge-replicate padding added before the net (what the upstream apps do per tile);
    crop: pixels removed from each output border afterwards. The nets take RGB in [0,1] and
    return RGB in [0,1] (upstream apps use pixel/255 in, *255 out), so no normalisation is
    needed; OUTPUT is not clamped.
    """
    g = _Graph()
    x = "INPUT"
    if prepad:
        pads = g.const("prepad.pads", [0, 0, prepad, prepad, 0, 0, prepad, prepad], np.int64)
        x = g.add("Pad", [x, pads], "prepad", mode="edge")
    channels = {}  # ncnn blob -> channel count, needed for depthwise kernels
    for layer in layers:
        t, p = layer.type, layer.params
        ins = [g.blob[b] for b in layer.inputs]
        c = channels[layer.inputs[0]] if layer.inputs else 3
        if t == "Input":
            y = x
        elif t == "Split":  # ncnn fan-out; ONNX tensors can be consumed many times
            y = ins[0]
        elif t in ("Convolution", "Deconvolution"):
            y = _conv(g, layer, ins[0], weights[layer.name])
        elif t == "PReLU":
            slope = weights[layer.name][0]
            slope = slope.reshape(-1, 1, 1) if slope.size > 1 else slope
            y = g.add("PRelu", [ins[0], g.const(layer.name + ".slope", slope)], layer.name)
        elif t == "PixelShuffle":  # ncnn mode 0 == torch PixelShuffle == DepthToSpace CRD
            y = g.add("DepthToSpace", ins, layer.name, blocksize=p[0], mode="DCR" if p.get(1, 0) else "CRD")
        elif t == "Interp":
            y = _interp(g, layer, ins[0], c)
        elif t == "BinaryOp":
            y = _binary(g, layer, ins)
        elif t == "Eltwise":
            y = _eltwise(g, layer, ins)
        elif t == "Concat":  # ncnn axis 0 of a CxHxW blob is ONNX's channel axis 1
            if p.get(0, 0) != 0:
                raise ValueError(f"{layer.name}: concat on axis {p.get(0)} is not supported")
            y = g.add("Concat", ins, layer.name, axis=1)
        else:
            raise ValueError(f"layer type {t} ({layer.name}) is not supported")
        if t in ("Convolution", "Deconvolution"):
            c = p[0]
        elif t == "PixelShuffle":
            c //= p[0] ** 2
        elif t == "Concat":
            c = sum(channels[b] for b in layer.inputs)
        for b in layer.outputs:
            g.blob[b] = y
            channels[b] = c
    y = g.blob[output_blob]
    if crop:
        y = g.add(
            "Slice",
            [
                y,
                g.const("crop.starts", [crop, crop], np.int64),
                g.const("crop.ends", [-crop, -crop], np.int64),
                g.const("crop.axes", [2, 3], np.int64),
            ],
            "crop",
        )
    g.add("Identity", [y], "OUTPUT")
    graph = helper.make_graph(
        g.nodes,
        graph_name,
        [helper.make_tensor_value_info("INPUT", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("OUTPUT", TensorProto.FLOAT, ["batch", 3, "out_height", "out_width"])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="retouch.export.ncnn_to_onnx",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    return model
