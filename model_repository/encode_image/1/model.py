"""encode_image: RGB pixels -> PNG/JPEG/WebP bytes (or raw pixels), in the format the last
pipeline step put in report["output"]."""

import triton_python_backend_utils as pb_utils

from retouch.codecs import encode_response
from retouch.triton import bytes_tensor, input_array, json_tensor, read_report, respond_each, timed


class TritonPythonModel:
    def execute(self, requests):
        return respond_each(requests, self.encode)

    def encode(self, request):
        report = read_report(request)
        output = report.setdefault("output", {"format": "png", "quality": 95})
        pixels = input_array(request, "PIXELS")
        with timed(report, "encode"):
            data, raw = encode_response(pixels, output["format"], output["quality"])
        output.update(width=pixels.shape[1], height=pixels.shape[0], bytes=len(data) or raw.nbytes)
        return [bytes_tensor("IMAGE", data), pb_utils.Tensor("RAW_PIXELS", raw), json_tensor("REPORT", report)]
