"""decode_mask: encoded mask bytes -> HxW uint8, under the same pixel limit as images.
Only the inpaint operation uses it, so it counts its rejections as inpaint's."""

from functools import partial

import triton_python_backend_utils as pb_utils

from retouch.codecs import DEFAULT_MAX_PIXELS, decode_mask
from retouch.errors import InvalidInput
from retouch.triton import input_bytes, model_parameters, respond_each
from retouch.triton.metrics import PipelineMetrics

OPERATION = "inpaint"


class TritonPythonModel:
    def initialize(self, args):
        self.max_pixels = int(model_parameters(args).get("max_pixels", DEFAULT_MAX_PIXELS))
        self.metrics = PipelineMetrics([OPERATION])

    def execute(self, requests):
        return respond_each(requests, self.decode, on_error=partial(self.metrics.edit, OPERATION))

    def decode(self, request):
        data = input_bytes(request, "MASK")
        if data is None:  # optional in the config, so that its absence gets this message
            raise InvalidInput("inpaint needs a MASK: an encoded PNG, JPEG or WebP image of the "
                               "image's size, bright where pixels are to be removed")
        return [pb_utils.Tensor("MASK", decode_mask(data, self.max_pixels))]
