# retouch: every target sets up what it needs first (idempotent, so repeats are cheap).
PY := .venv/bin/python

.PHONY: setup serve stop demo test test-unit bench perf export clean

setup:
	bash scripts/setup.sh

serve: setup
	scripts/serve.sh start

stop:
	scripts/serve.sh stop

# Starts tritonserver on loopback, upscales a real photo over gRPC, writes out/demo_upscaled_x2.png.
# The server keeps running afterwards for you to try; `make stop` stops it.
demo: serve
	$(PY) scripts/demo.py

# Unit tests, then end-to-end tests against a real tritonserver the tests start themselves.
test: setup
	$(PY) -m pytest tests -ra

test-unit: setup
	$(PY) -m pytest tests/unit -ra

bench: setup
	bash scripts/bench.sh

perf: serve
	$(PY) scripts/perf.py

export: setup
	$(PY) -m export.upscalers --out model_repository --force

# The upscaling quality table (modes at x2/x4, denoise, tiled vs untiled): docs/upscale_quality.md.
.PHONY: eval-upscale
eval-upscale: setup
	$(PY) scripts/eval_upscale.py

clean: stop
	rm -rf .run out
