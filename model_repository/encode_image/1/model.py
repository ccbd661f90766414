"""encode_image: RGB pixels -> PNG/JPEG/WebP bytes, as the report's effective settings say."""

from retouch.codecs import encode_image
from retouch.triton import bytes_tensor, input_array, json_tensor, read_report, respond_each, timed


class TritonPythonModel:
    def execute(self, requests):
        return respond_each(requests, self.encode)

    def encode(self, request):
        report = read_report(request)
        settings = report.get("settings", {})
        with timed(report, "encode"):
            data = encode_image(input_array(request, "PIXELS"), settings.get("format", "png"),
                                settings.get("quality", 95))
        report["output"]["format"] = settings.get("format", "png")
        report["output"]["bytes"] = len(data)
        return [bytes_tensor("IMAGE", data), json_tensor("REPORT", report)]
