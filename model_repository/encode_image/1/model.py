"""encode_image: RGB pixels -> PNG/JPEG/WebP bytes (or raw pixels), as the report's effective settings say."""

import triton_python_backend_utils as pb_utils

from retouch.codecs import encode_response
from retouch.triton import bytes_tensor, input_array, json_tensor, read_report, respond_each, timed


class TritonPythonModel:
    def execute(self, requests):
        return respond_each(requests, self.encode)

    def encode(self, request):
        report = read_report(request)
        settings = report.get("settings", {})
        with timed(report, "encode"):
            data, raw = encode_response(input_array(request, "PIXELS"), settings.get("format", "png"),
                                        settings.get("quality", 95))
        report["output"]["format"] = settings.get("format", "png")
        report["output"]["bytes"] = len(data) or raw.nbytes
        return [bytes_tensor("IMAGE", data), pb_utils.Tensor("RAW_PIXELS", raw), json_tensor("REPORT", report)]
