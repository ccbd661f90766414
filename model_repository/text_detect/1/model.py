"""text_detect: fixed-size buckets through text_detector (BLS), DB post-processing, the text mask.
The work is retouch.text.detect_text; this is the glue."""

import asyncio
import json
from functools import partial
from pathlib import Path

import triton_python_backend_utils as pb_utils

from retouch.settings import parse_settings
from retouch.text import DEFAULT_BUCKETS, MODEL_NAME, DetectSettings, detect_text
from retouch.triton import (add_step, bls, input_array, input_bytes, json_tensor, model_parameters,
                            read_manifest, read_report, respond_each, timed)
from retouch.triton.metrics import PipelineMetrics

OPERATION = "detect_text"


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        self.buckets = tuple(sorted(int(b) for b in params.get("buckets", "").split(",") if b.strip())) \
            or DEFAULT_BUCKETS
        self.max_batch = int(params.get("tiles_per_request_batch", "8"))
        self.manifest = read_manifest(args["model_repository"], MODEL_NAME)
        # Which detector export.text_detectors put in the slot decides how pixels are normalised.
        model_json = Path(args["model_repository"]).parent / MODEL_NAME / "1" / "model.json"
        self.detector = json.loads(model_json.read_text())["detector"]
        self.loop = asyncio.new_event_loop()
        self.metrics = PipelineMetrics([OPERATION])

    def execute(self, requests):
        return respond_each(requests, self.detect, on_error=partial(self.metrics.edit, OPERATION))

    @staticmethod
    async def infer(batch):
        return await bls(MODEL_NAME, {"INPUT": batch})

    def detect(self, request):
        report = read_report(request)
        settings = parse_settings(DetectSettings, input_bytes(request, "SETTINGS"))
        pixels = input_array(request, "PIXELS")
        with timed(report, OPERATION):
            found, figures = self.loop.run_until_complete(detect_text(
                pixels, settings, self.infer, detector=self.detector, buckets=self.buckets,
                max_batch=self.max_batch))
        report.setdefault("operation", OPERATION)
        add_step(report, OPERATION, settings, figures, [self.manifest])
        self.metrics.mask_coverage(OPERATION, found.coverage)
        self.metrics.edit(OPERATION, "accepted")
        return [pb_utils.Tensor("BOXES", found.boxes), pb_utils.Tensor("SCORES", found.scores),
                pb_utils.Tensor("MASK", found.mask), json_tensor("REPORT", report)]

    def finalize(self):
        self.loop.close()
