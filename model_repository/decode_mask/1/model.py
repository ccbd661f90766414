"""decode_mask: encoded mask bytes -> HxW uint8, under the same pixel limit as images.
Only the inpaint operation uses it, so it counts its rejections as inpaint's."""

from functools import partial

import triton_python_backend_utils as pb_utils

from retouch.codecs import decode_mask
from retouch.errors import InvalidInput
from retouch.triton import input_bytes, respond_each
from retouch.triton.metrics import PipelineMetrics
from retouch.triton.step import deployment_parameters, positive_int

OPERATION = "inpaint"


class TritonPythonModel:
    PARAMETERS = {"max_pixels": positive_int}

    def initialize(self, args):
        self.max_pixels = deployment_parameters(args, self.PARAMETERS)["max_pixels"]
        self.metrics = PipelineMetrics([OPERATION])

    def execute(self, requests):
        return respond_each(requests, self.decode, on_error=partial(self.metrics.edit, OPERATION))

    def decode(self, request):
        data = input_bytes(request, "MASK")
        if data is None:  # optional in the config, so that its absence gets this message
            raise InvalidInput(
                "inpaint needs a MASK: an encoded PNG, JPEG or WebP image of the "
                "image's size, bright where pixels are to be removed"
            )
        return [pb_utils.Tensor("MASK", decode_mask(data, self.max_pixels))]
