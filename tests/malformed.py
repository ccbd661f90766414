"""A corpus of malformed requests, across every operation: broken and hostile image bytes, bad
settings, wrong tensors, bad masks. Each must be answered INVALID_ARGUMENT with a short message
(tests/e2e/test_reliability.py), and the server must answer a normal request the same afterwards.

A case is (kind, operation, inputs): inputs are (name, numpy array, Triton datatype) for a raw
tritonclient request, so that wrong dtypes and ranks can be sent too.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import NamedTuple

import numpy as np
from PIL import Image

OPERATIONS = ("upscale", "detect_text", "inpaint", "remove_text", "clean")
SIDE = 64


class Case(NamedTuple):
    kind: str
    operation: str
    inputs: list  # [(name, array, datatype)]


def encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunks.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def png_from(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(k, d) for k, d in chunks)


def image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


def bad_images() -> dict[str, bytes]:
    """Image (or mask) payloads that no decoder should accept, each a different way of failing."""
    rgb = image()
    png, jpeg, webp = encode(rgb, "PNG"), encode(rgb, "JPEG", quality=90), encode(rgb, "WEBP")
    chunks = png_chunks(png)
    ihdr = chunks[0]
    with_text = png_from([ihdr, (b"tEXt", b"comment\x00" + b"x" * 400), *chunks[1:]])
    iccp = (b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * 4_000_000))
    huge_ihdr = (b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
    zero_ihdr = (b"IHDR", struct.pack(">IIBBBBB", 0, SIDE, 8, 2, 0, 0, 0))
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # IHDR's CRC
    bad_depth = png_from([(b"IHDR", struct.pack(">IIBBBBB", SIDE, SIDE, 7, 2, 0, 0, 0)), *chunks[1:]])
    ztxt = (b"zTXt", b"comment\x00\x00" + zlib.compress(b"x" * 4_000_000))
    sof = jpeg.find(b"\xff\xc0")
    jpeg_bomb = jpeg[: sof + 5] + struct.pack(">HH", 65000, 65000) + jpeg[sof + 9 :]
    idat_garbage = png_from([ihdr, (b"IDAT", b"\x78\x9c" + b"\xff" * 200), (b"IEND", b"")])
    return {
        "empty payload": b"",
        "plain text": b"this is not an image at all",
        "png signature only": png[:8],
        "png cut inside IHDR": png[:20],
        "png cut inside a chunk before IDAT": with_text[: 33 + 100],
        "png cut inside IDAT": png[: len(png) // 2],
        "png with a bad IHDR crc": bytes(bad_crc),
        "png with iCCP inflating to 4 MB": png_from([ihdr, iccp, *chunks[1:]]),
        "png header of 60000x60000 (bomb)": png_from([huge_ihdr, *chunks[1:]]),
        "png of zero width": png_from([zero_ihdr, *chunks[1:]]),
        "png with bit depth 7": bad_depth,
        "png with a chunk longer than the file": png_from([ihdr])
        + struct.pack(">I", 0x7FFFFFF0)
        + b"IDAT"
        + b"\0" * 64,
        "png with colour type 5": png_from(
            [(b"IHDR", struct.pack(">IIBBBBB", SIDE, SIDE, 8, 5, 0, 0, 0)), *chunks[1:]]
        ),
        "png with zTXt inflating to 4 MB": png_from([ihdr, ztxt, *chunks[1:]]),
        "jpeg header of 65000x65000 (bomb)": jpeg_bomb,
        "webp RIFF header only": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
        "tiff (not accepted)": encode(rgb, "TIFF"),
        "png with garbage IDAT": idat_garbage,
        "jpeg cut at 100 bytes": jpeg[:100],
        "jpeg cut in half": jpeg[: len(jpeg) // 2],
        "jpeg SOI then garbage": b"\xff\xd8" + bytes(range(256)) * 4,
        "webp cut in half": webp[: len(webp) // 2],
        "gif (not accepted)": encode(rgb, "GIF"),
        "bmp (not accepted)": encode(rgb, "BMP"),
        "random bytes": np.random.default_rng(3).integers(0, 256, 10_000, dtype=np.uint8).tobytes(),
    }


def bytes_input(name: str, value: bytes) -> tuple:
    return (name, np.array([value], dtype=np.object_), "BYTES")


def mask(shape: tuple[int, int], fill: int = 0) -> bytes:
    m = np.full(shape, fill, np.uint8)
    m[shape[0] // 4 : shape[0] // 4 + 4, shape[1] // 4 : shape[1] // 4 + 4] = 255
    return encode(m, "PNG")


def good_inputs(operation: str) -> list:
    """A valid request of the operation (a small random image; inpaint and clean with a mask)."""
    inputs = [bytes_input("IMAGE", encode(image(), "PNG"))]
    if operation == "inpaint":
        inputs.append(bytes_input("MASK", mask((SIDE, SIDE))))
    return inputs


def with_input(operation: str, name: str, value, datatype: str = "BYTES") -> list:
    """The operation's valid inputs with one replaced (or added)."""
    array = np.array([value], dtype=np.object_) if datatype == "BYTES" else value
    return [i for i in good_inputs(operation) if i[0] != name] + [(name, array, datatype)]


def settings_cases(operation: str) -> dict[str, bytes]:
    def wrap(value):  # clean's settings come in parts
        return {"upscale": value} if operation == "clean" else value

    key = {
        "upscale": "scale",
        "detect_text": "box_thresh",
        "inpaint": "feather_sigma",
        "remove_text": "min_confidence",
        "clean": "scale",
    }[operation]
    return {
        "settings not JSON": b"{scale: 2",
        "settings a JSON array": b"[1, 2, 3]",
        "settings not UTF-8": b'{"\xff\xfe": 1}',
        "settings with an unknown key": json.dumps(wrap({"no_such_setting": 1})).encode(),
        "settings value of the wrong type": json.dumps(wrap({key: "high"})).encode(),
        "settings value out of range": json.dumps(wrap({key: 1e9})).encode(),
        "settings with a 5000-digit integer": b'{"' + key.encode() + b'": ' + b"9" * 5000 + b"}",
        "settings nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
        "settings with NaN": b'{"' + key.encode() + b'": NaN}',
        "settings with a 20 KB key (echo)": json.dumps(wrap({"k" * 20_000: 1})).encode(),
        "settings of 100 KB": json.dumps(wrap({key: 1, "pad": "x" * 100_000})).encode(),
        "settings a JSON string": b'"scale=2"',
        "settings null": b"null",
        "settings with an object where a number belongs": json.dumps(wrap({key: {"a": 1}})).encode(),
        "settings with true for a number": json.dumps(wrap({key: True})).encode(),
        "settings with an empty key": json.dumps(wrap({"": 1})).encode(),
    }


# Settings each operation must refuse (out of range, unknown choice, wrong shape), by operation.
OPERATION_SETTINGS = {
    "upscale": {
        "scale 3": {"scale": 3},
        "mode unknown": {"mode": "sharp"},
        "tile 8": {"tile": 8},
        "tile 4096": {"tile": 4096},
        "overlap over half the tile": {"tile": 64, "overlap": 40},
        "blend unknown": {"blend": "linear"},
        "format gif": {"format": "gif"},
        "quality 0": {"quality": 0},
        "quality 101": {"quality": 101},
        "seam_threshold under 1": {"seam_threshold": 0.5},
    },
    "detect_text": {
        "thresh over 1": {"thresh": 1.5},
        "box_thresh negative": {"box_thresh": -0.1},
        "unclip_ratio negative": {"unclip_ratio": -1.0},
        "max_candidates 0": {"max_candidates": 0},
        "max_side 10": {"max_side": 10},
        "score_mode unknown": {"score_mode": "median"},
        "mask_dilation negative": {"mask_dilation": -1},
    },
    "inpaint": {
        "route unknown": {"route": "lama"},
        "dilation negative": {"dilation": -5},
        "feather_sigma negative": {"feather_sigma": -1.0},
        "max_coverage over 1": {"max_coverage": 2.0},
        "context negative": {"context": -1.0},
        "format bmp": {"format": "bmp"},
    },
    "remove_text": {
        "min_confidence over 1": {"min_confidence": 2.0},
        "detect not an object": {"detect": 5},
        "inpaint route unknown": {"inpaint": {"route": "x"}},
        "blur_sigma negative": {"blur_sigma": -1.0},
        "detect setting unknown": {"detect": {"nope": 1}},
    },
    "clean": {
        "remove_text part not an object": {"remove_text": 5},
        "upscale scale 3": {"upscale": {"scale": 3}},
        "unknown part": {"paint": {}},
        "remove_text min_confidence negative": {"remove_text": {"min_confidence": -1.0}},
        "upscale part with jpeg quality 0": {"upscale": {"format": "jpeg", "quality": 0}},
    },
}


def corpus() -> list[Case]:
    cases = []
    for operation in OPERATIONS:
        for kind, payload in bad_images().items():
            cases.append(Case(f"IMAGE: {kind}", operation, with_input(operation, "IMAGE", payload)))
        for kind, payload in settings_cases(operation).items():
            cases.append(Case(kind, operation, with_input(operation, "SETTINGS", payload)))
        for kind, settings in OPERATION_SETTINGS[operation].items():
            cases.append(
                Case(
                    f"{operation} settings: {kind}",
                    operation,
                    with_input(operation, "SETTINGS", json.dumps(settings).encode()),
                )
            )
        tensor_cases = {
            "IMAGE as FP32": with_input(operation, "IMAGE", np.zeros(1, np.float32), "FP32"),
            "IMAGE with two elements": [i for i in good_inputs(operation) if i[0] != "IMAGE"]
            + [("IMAGE", np.array([b"a", b"b"], dtype=np.object_), "BYTES")],
            "PIXELS of rank 2": [i for i in good_inputs(operation) if i[0] != "IMAGE"]
            + [("PIXELS", np.zeros((SIDE, SIDE), np.uint8), "UINT8")],
            "PIXELS with 4 channels": [i for i in good_inputs(operation) if i[0] != "IMAGE"]
            + [("PIXELS", np.zeros((SIDE, SIDE, 4), np.uint8), "UINT8")],
            "PIXELS as FP32": [i for i in good_inputs(operation) if i[0] != "IMAGE"]
            + [("PIXELS", np.zeros((SIDE, SIDE, 3), np.float32), "FP32")],
            "PIXELS of 0x0": [i for i in good_inputs(operation) if i[0] != "IMAGE"]
            + [("PIXELS", np.zeros((0, 0, 3), np.uint8), "UINT8")],
            "both IMAGE and PIXELS": good_inputs(operation) + [("PIXELS", image(), "UINT8")],
            "neither IMAGE nor PIXELS": [i for i in good_inputs(operation) if i[0] != "IMAGE"],
            "an unknown input": good_inputs(operation) + [bytes_input("NOT_AN_INPUT", b"x")],
            "SETTINGS as INT32": good_inputs(operation) + [("SETTINGS", np.zeros(1, np.int32), "INT32")],
            "SETTINGS with two elements": good_inputs(operation)
            + [("SETTINGS", np.array([b"{}", b"{}"], dtype=np.object_), "BYTES")],
            "IMAGE of no elements": [i for i in good_inputs(operation) if i[0] != "IMAGE"]
            + [("IMAGE", np.array([], dtype=np.object_), "BYTES")],
        }
        cases += [Case(kind, operation, inputs) for kind, inputs in tensor_cases.items()]
    for op in ("inpaint", "clean"):
        mask_cases = {
            "MASK of the wrong size": mask((SIDE // 2, SIDE)),
            "MASK of 1x1": encode(np.full((1, 1), 255, np.uint8), "PNG"),
            "MASK of 320x1": encode(np.full((1, 320), 255, np.uint8), "PNG"),
            "MASK cut in half": mask((SIDE, SIDE))[:40],
            "MASK with iCCP inflating to 4 MB": bad_images()["png with iCCP inflating to 4 MB"],
            "MASK not an image": b"mask",
            "MASK empty": b"",
        }
        cases += [Case(kind, op, with_input(op, "MASK", payload)) for kind, payload in mask_cases.items()]
    cases.append(Case("MASK missing", "inpaint", [bytes_input("IMAGE", encode(image(), "PNG"))]))
    cases.append(
        Case(
            "MASK covering the whole image",
            "inpaint",
            with_input("inpaint", "MASK", encode(np.full((SIDE, SIDE), 255, np.uint8), "PNG")),
        )
    )
    return cases
