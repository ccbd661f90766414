"""split_settings: one SETTINGS object -> one per step (output names are the parts, upper case)."""

import json

from retouch.settings import split_sections
from retouch.triton import bytes_tensor, input_bytes, respond_each


class TritonPythonModel:
    def initialize(self, args):
        self.parts = [o["name"].lower() for o in json.loads(args["model_config"])["output"]]

    def execute(self, requests):
        return respond_each(requests, self.split)

    def split(self, request):
        sections = split_sections(input_bytes(request, "SETTINGS"), self.parts)
        return [bytes_tensor(part.upper(), json.dumps(sections[part]).encode()) for part in self.parts]
