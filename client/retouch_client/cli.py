"""retouch: the command line over retouch_client.

  retouch upscale in.jpg -o out.png --scale 4
  retouch upscale photos/ 'more/*.jpg' -o upscaled/ --jobs 4 --json
  retouch remove-text photos/*.jpg -o cleaned/
  retouch inpaint photo.jpg --mask mask.png -o filled.png --route unet
  retouch inpaint photos/ --mask masks/ -o filled/          # masks/<stem>.png for each photo
  retouch clean photo.jpg -o clean.png --scale 4 [--mask objects.png]
  retouch detect-text photos/ -o boxes/                     # boxes/<stem>.json: boxes and scores
  retouch health

Exit codes: 0 every output written; 1 some call failed (server error, deadline, I/O); 2 usage
error (bad arguments, no input found); 3 some input was refused as invalid and nothing else failed;
4 the server is unreachable or not ready.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from prometheus_client import CollectorRegistry

from retouch_client.aio import AsyncRetouchClient
from retouch_client.core import DEFAULT_TIMEOUT_S, RetryPolicy, default_url
from retouch_client.errors import RetouchError
from retouch_client.operations import CLEAN, DETECT_TEXT, INPAINT, REMOVE_TEXT, UPSCALE, Operation

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
FORMAT_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}

JSON_OUTPUT = ({"json": ".json"}, {".json": "json"})  # operations that return no image write JSON

# Each operation's own settings as options (the server validates the values). A new operation
# adds an entry; its subcommand is its name with dashes. Chained operations (clean) take them in
# the settings part of the step that returns the image (Operation.output_part).
OPERATION_OPTIONS: dict[Operation, list[tuple[str, dict]]] = {
    UPSCALE: [
        ("--scale", dict(type=int, help="2 or 4 (server default 2)")),
        ("--outscale", dict(type=float, help="any output factor from 1 to 8 (overrides --scale)")),
        (
            "--mode",
            dict(help="faithful (default), photo (RealESRGAN_x4plus) or anime; conservative/creative are aliases"),
        ),
        ("--denoise", dict(type=int, help="0 (default) to 3: JPEG noise reduction, mode faithful")),
        ("--tile", dict(type=int, help="input pixels per tile side")),
        ("--overlap", dict(type=int, help="input pixels shared by neighbouring tiles")),
        ("--blend", dict(help="cosine (default) or none")),
        ("--seam-threshold", dict(type=float, help="seam score above which the report flags seams")),
    ],
    REMOVE_TEXT: [
        (
            "--residual-overlap",
            dict(type=float, help="share of a re-detected box inside the mask that counts as residual text"),
        ),
    ],
    INPAINT: [
        ("--route", dict(help="auto (default), fast, unet, telea, fsr or patchmatch")),
        ("--dilation", dict(type=int, help="pixels to grow the mask by before filling")),
        ("--feather-sigma", dict(type=float, help="Gaussian sigma of the pasted fill's edge, in pixels")),
        ("--max-coverage", dict(type=float, help="largest masked fraction of the image accepted")),
    ],
    CLEAN: [
        ("--scale", dict(type=int, help="2 or 4 (server default 2)")),
        ("--mode", dict(help="faithful (default), photo or anime")),
    ],
    DETECT_TEXT: [
        ("--box-thresh", dict(type=float, help="mean score inside a box below which it is dropped")),
        ("--unclip-ratio", dict(type=float, help="how far boxes grow around the text")),
    ],
}
MASKED = {INPAINT: True, CLEAN: False}  # operations that take a --mask per input: required?


class UsageError(Exception):
    pass


@dataclass
class Outcome:
    source: Path
    target: Path
    report: Optional[dict] = None
    error: Optional[str] = None
    code: Optional[str] = None  # gRPC status code name, or IO

    def as_json(self) -> dict:
        if self.error is None:
            return {"input": str(self.source), "output": str(self.target), "report": self.report}
        return {"input": str(self.source), "error": {"code": self.code, "message": self.error}}


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Files, folders (their images, not recursive) and globs, in order, each file once."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(
                Path(p)
                for p in glob.glob(pattern, recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES
            )
        if not found:
            raise UsageError(f"{pattern}: no such file, and no images in a folder or glob by that name")
        files += found
    return list(dict.fromkeys(files))


def plan_outputs(
    inputs: list[Path],
    output: Path,
    fmt: Optional[str],
    format_suffixes: dict = FORMAT_SUFFIXES,
    suffix_formats: dict = SUFFIX_FORMATS,
) -> tuple[list[tuple[Path, Path]], str]:
    """(input, output path) pairs and the output format. -o names a file for one input with an
    image suffix; otherwise it is a folder that gets <stem>.<format suffix> per input."""
    if len(inputs) == 1 and output.suffix.lower() in suffix_formats and not output.is_dir():
        return [(inputs[0], output)], fmt or suffix_formats[output.suffix.lower()]
    fmt = fmt or next(iter(format_suffixes))
    if fmt not in format_suffixes:
        raise UsageError(f"--format must be one of {sorted(format_suffixes)}, got {fmt!r}")
    pairs = [(src, output / (src.stem + format_suffixes[fmt])) for src in inputs]
    targets = [dst for _, dst in pairs]
    clashes = sorted({str(t) for t in targets if targets.count(t) > 1})
    if clashes:
        raise UsageError(f"several inputs would write the same output: {clashes}; rename them or split the run")
    return pairs, fmt


def plan_masks(sources: list[Path], mask: Path) -> dict[Path, Path]:
    """--mask FILE serves every input; --mask FOLDER holds one mask per input, named by its stem."""
    if mask.is_file():
        return dict.fromkeys(sources, mask)
    if not mask.is_dir():
        raise UsageError(f"--mask {mask}: no such file or folder")
    found = {p.stem: p for p in sorted(mask.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    missing = [s.name for s in sources if s.stem not in found]
    if missing:
        raise UsageError(f"--mask {mask}: no mask for {missing[:5]}; name each <input stem>.png (or .jpg, .webp)")
    return {s: found[s.stem] for s in sources}


def parse_set(values: list[str]) -> dict:
    settings = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            settings[key] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key] = raw  # a bare word: a string
    return settings


def exit_code(outcomes: list[Outcome]) -> int:
    codes = {o.code for o in outcomes if o.error is not None}
    if not codes:
        return EXIT_OK
    if "UNAVAILABLE" in codes:
        return EXIT_UNAVAILABLE
    return EXIT_INVALID if codes == {"INVALID_ARGUMENT"} else EXIT_FAILED


class Progress:
    """One stderr line: a bar redrawn in place on a terminal; failures are printed as they happen."""

    def __init__(self, total: int, label: str, quiet: bool, stream=sys.stderr):
        self.total, self.label, self.quiet, self.stream = total, label, quiet, stream
        self.done = self.failed = 0
        self.live = stream.isatty() and not quiet
        self.started = time.monotonic()

    def update(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.error is not None:
            self.failed += 1
            self._clear()
            print(f"retouch: {outcome.source}: {outcome.code}: {outcome.error}", file=self.stream)
        if self.live:
            width = 30
            filled = width * self.done // self.total
            self.stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total}, {self.failed} failed"
            )
            self.stream.flush()

    def finish(self) -> None:
        self._clear()
        if not self.quiet:
            print(
                f"{self.label}: {self.done - self.failed} written, {self.failed} failed "
                f"in {time.monotonic() - self.started:.1f}s",
                file=self.stream,
            )

    def _clear(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")


async def run_operation(
    client: AsyncRetouchClient,
    operation: Operation,
    pairs: list[tuple[Path, Path]],
    settings: dict,
    jobs: int,
    progress: Progress,
    as_json: bool,
    masks: Optional[dict[Path, Path]] = None,
) -> list[Outcome]:
    limit = asyncio.Semaphore(jobs)

    async def one(source: Path, target: Path) -> Outcome:
        async with limit:
            outcome = Outcome(source, target)
            try:
                mask = masks[source].read_bytes() if masks else None
                result = await client.call(operation, source.read_bytes(), mask, **settings)
                target.parent.mkdir(parents=True, exist_ok=True)
                if operation.returns_image:
                    target.write_bytes(result.data)
                else:  # the operation's own outputs, less its image-sized masks
                    found = {
                        name.lower(): value.tolist()
                        for name, value in result.outputs.items()
                        if value.dtype != np.uint8
                    }
                    target.write_text(json.dumps({**found, "report": result.report}) + "\n")
                outcome.report = result.report
            except RetouchError as exc:
                outcome.error, outcome.code = exc.message, exc.code
            except OSError as exc:
                outcome.error, outcome.code = str(exc), "IO"
        progress.update(outcome)
        if as_json:
            print(json.dumps(outcome.as_json(), sort_keys=True), flush=True)
        return outcome

    return list(await asyncio.gather(*(one(s, t) for s, t in pairs)))


async def health(client: AsyncRetouchClient, as_json: bool) -> int:
    try:
        state = await client.health()
    except RetouchError as exc:
        print(f"retouch: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if as_json:
        print(
            json.dumps(
                {
                    "url": state.url,
                    "live": state.live,
                    "ready": state.ready,
                    "operations": state.operations,
                    "ok": state.ok,
                },
                sort_keys=True,
            )
        )
    else:
        ops = ", ".join(f"{name} {'ready' if ready else 'NOT READY'}" for name, ready in state.operations.items())
        print(f"{state.url}: {'live' if state.live else 'NOT LIVE'}, {'ready' if state.ready else 'NOT READY'}; {ops}")
    return EXIT_OK if state.ok else EXIT_UNAVAILABLE


def build_parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    group.add_argument(
        "--url",
        default=default_url(),
        help="Triton gRPC address, or several separated by commas (env RETOUCH_URL; %(default)s)",
    )
    group.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="deadline per call in seconds (%(default)s)"
    )
    group.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries on UNAVAILABLE or RESOURCE_EXHAUSTED, with backoff (%(default)s)",
    )
    group.add_argument("--ssl", action="store_true", help="use TLS")
    group.add_argument("--root-certificates", help="PEM file of root certificates (TLS)")
    group.add_argument("--private-key", help="PEM file of the client's private key (mutual TLS)")
    group.add_argument("--certificate-chain", help="PEM file of the client's certificate chain (mutual TLS)")
    group.add_argument("--json", action="store_true", help="print results as JSON lines on stdout")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")

    parser = argparse.ArgumentParser(
        prog="retouch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("health", parents=[connection], help="is the server up, and each operation ready?")
    for operation, options in OPERATION_OPTIONS.items():
        sub = commands.add_parser(
            operation.name.replace("_", "-"),
            parents=[connection],
            help=f"run {operation.name} on files, folders or globs",
        )
        sub.set_defaults(operation=operation)
        sub.add_argument("inputs", nargs="+", help="image files, folders of images, or globs")
        sub.add_argument(
            "-o",
            "--output",
            type=Path,
            required=True,
            help="output file (one input) or folder (written as <stem>.<format>)",
        )
        if operation in MASKED:
            sub.add_argument(
                "--mask",
                type=Path,
                required=MASKED[operation],
                help="mask image (bright = fill) for every input, or a folder of <input stem>.png",
            )
        settings = sub.add_argument_group("settings (sent to the server, which validates them)")
        for flag, kwargs in options:
            settings.add_argument(flag, **kwargs)
        if operation.returns_image:
            settings.add_argument("--format", help="png, jpeg or webp (default: from -o's suffix, else png)")
            settings.add_argument("--quality", type=int, help="JPEG/WebP quality")
        settings.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="any other setting; VALUE is read as JSON when it parses",
        )
        sub.add_argument("-j", "--jobs", type=int, default=4, help="calls in flight at once (%(default)s)")
    return parser


def make_client(args) -> AsyncRetouchClient:
    return AsyncRetouchClient(
        args.url,
        timeout_s=args.timeout,
        retry=RetryPolicy(attempts=args.retries + 1),
        registry=CollectorRegistry(),  # a CLI run has no one to scrape its metrics
        ssl=args.ssl,
        root_certificates=args.root_certificates,
        private_key=args.private_key,
        certificate_chain=args.certificate_chain,
    )


async def main_async(args) -> int:
    if args.command == "health":
        async with make_client(args) as client:
            return await health(client, args.json)
    operation: Operation = args.operation
    inputs = expand_inputs(args.inputs)
    if operation.returns_image:
        pairs, fmt = plan_outputs(inputs, args.output, args.format)
    else:
        pairs, fmt = plan_outputs(inputs, args.output, None, *JSON_OUTPUT)
    mask = getattr(args, "mask", None)
    masks = plan_masks([source for source, _ in pairs], mask) if mask is not None else None
    names = [flag.lstrip("-").replace("-", "_") for flag, _ in OPERATION_OPTIONS[operation]] + ["quality"]
    own = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if operation.returns_image:
        own["format"] = fmt
    settings = {operation.output_part: own} if operation.output_part else own
    for key, value in parse_set(args.set).items():  # a settings part given with --set merges into ours
        both = isinstance(value, dict) and isinstance(settings.get(key), dict)
        settings[key] = {**settings[key], **value} if both else value
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    progress = Progress(len(pairs), f"retouch {args.command}", args.quiet)
    async with make_client(args) as client:
        outcomes = await run_operation(client, operation, pairs, settings, args.jobs, progress, args.json, masks)
    progress.finish()
    return exit_code(outcomes)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except UsageError as exc:
        print(f"retouch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
