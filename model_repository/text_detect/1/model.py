"""text_detect: fixed-size buckets through text_detector (BLS), DB post-processing, the text mask.
The work is retouch.text.detect_text; this is the glue."""

import asyncio
from functools import partial

import triton_python_backend_utils as pb_utils

from retouch.settings import parse_settings
from retouch.text import MODEL_NAME, DetectSettings, detect_text
from retouch.triton import (add_step, detector_infer, detector_options, input_array, input_bytes,
                            read_manifest, read_report, report_tensor, respond_each, timed)
from retouch.triton.metrics import PipelineMetrics

OPERATION = "detect_text"


class TritonPythonModel:
    def initialize(self, args):
        self.options = detector_options(args)
        self.manifest = read_manifest(args["model_repository"], MODEL_NAME)
        self.loop = asyncio.new_event_loop()
        self.metrics = PipelineMetrics([OPERATION])

    def execute(self, requests):
        return respond_each(requests, self.detect, on_error=partial(self.metrics.edit, OPERATION))

    def detect(self, request):
        report = read_report(request)
        settings = parse_settings(DetectSettings, input_bytes(request, "SETTINGS"))
        pixels = input_array(request, "PIXELS")
        with timed(report, OPERATION):
            found, figures = self.loop.run_until_complete(
                detect_text(pixels, settings, detector_infer, **self.options))
        add_step(report, OPERATION, settings, figures, [self.manifest])
        self.metrics.mask_coverage(OPERATION, found.coverage)
        self.metrics.edit(OPERATION, "accepted")
        return [pb_utils.Tensor("BOXES", found.boxes), pb_utils.Tensor("SCORES", found.scores),
                pb_utils.Tensor("MASK", found.mask), report_tensor(report)]

    def finalize(self):
        self.loop.close()
