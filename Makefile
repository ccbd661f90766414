# retouch: every target sets up what it needs first (idempotent, so repeats are cheap).
PY := .venv/bin/python

.PHONY: setup serve stop demo lint test test-unit bench perf loadtest export eval clean schemas

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

# ruff, configured in pyproject.toml (`ruff format` is configured there too).
lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# Unit tests, then end-to-end tests against a real tritonserver the tests start themselves.
test: setup
	$(PY) -m pytest tests -ra

test-unit: setup
	$(PY) -m pytest tests/unit -ra

# docs/schemas/: JSON Schemas of every operation's SETTINGS and REPORT, from their declarations
# (retouch/settings.py and the operations' settings, retouch/reports.py). tests/unit/test_schemas.py
# fails when they are stale.
schemas: setup
	$(PY) -m retouch.schemas --write

# Side by side on this machine (own server, ports 18000-18002): BENCHMARKS.md says what and why.
bench: setup
	bash scripts/bench.sh

# Against the server `make serve` started: perf_analyzer on every ensemble, and a mixed load test.
perf: serve
	scripts/perf

loadtest: serve
	scripts/loadtest --duration 60

# Edit quality against the classical fills (docs/reports/edit_quality.md); installs the photo and font
# packages it evaluates on (not needed by the tests).
eval: setup
	sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$sudo apt-get install -y -q --no-install-recommends \
	  gnome-backgrounds plasma-workspace-wallpapers mate-backgrounds fonts-liberation fonts-freefont-ttf fonts-noto-core
	$(PY) -m export.eval_edits $(EVAL_ARGS)

export: setup
	$(PY) -m export.upscalers --out model_repository --force

# The upscaling quality table (modes at x2/x4, denoise, tiled vs untiled): docs/upscale_quality.md.
.PHONY: eval-upscale
eval-upscale: setup
	$(PY) scripts/eval_upscale.py

clean: stop
	rm -rf .run out
