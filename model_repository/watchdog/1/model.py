"""watchdog: reloads a model whose Python-backend stub died. The detection is retouch.watchdog; this is
the glue: the thread, pb_utils.load_model, the log and the metrics."""

from retouch.triton.watchdog import Watchdog as TritonPythonModel  # noqa: F401
