"""What the servers log, and how: the kit's own loggers from the start, one line per request
only when asked for, and an optional JSON format for log pipelines.

By default a server logs what an operator acts on: start-up, refusals (one line each, see
`kserve_kit.metrics.log_refusal`), faults, shutdown. The per-request lines (uvicorn's access
log and KServe's `kserve.trace` timing lines, two or three per request) come with
`--access_log true`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings

KIT_LOGGERS = ("predictor", "transformer", "kserve_kit")
PER_REQUEST_LOGGERS = ("uvicorn.access", "kserve.trace")
# Loggers whose handlers KServe's logging configuration sets up, and the kit's.
FORMATTED_LOGGERS = ("", "kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access")
LOG_FORMATS = ("text", "json")


def configure_kit_logging() -> None:
    """The kit's own loggers (`predictor.*`, `transformer.*`, `kserve_kit.*`) on stderr at INFO,
    in KServe's format, before the model loads: KServe configures only its own loggers, once its
    server is made, so what loading logs (the runtime's threads, workers and whether the model
    is traced) would otherwise be dropped."""
    from kserve.logging import KSERVE_LOGGER_DATE_FORMAT, KSERVE_LOGGER_FORMAT

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(KSERVE_LOGGER_FORMAT, KSERVE_LOGGER_DATE_FORMAT))
    for name in KIT_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


def configure_server_logging(access_log: bool, log_format: str) -> None:
    """Once KServe has configured its loggers (its ModelServer is made): per-request lines off
    unless `access_log`, FastAPI's warning about KServe's response class dropped, and every
    handler in `log_format`."""
    if not access_log:
        for name in PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    # KServe 0.21 builds its app with ORJSONResponse, which FastAPI deprecates: the warning is
    # KServe's, printed with a source line on the first request, and nothing the kit can act on.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    if log_format == "json":
        formatter = JsonFormatter()
        for name in (*FORMATTED_LOGGERS, *KIT_LOGGERS):
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(formatter)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the
    exception's traceback as a string when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

    converter = staticmethod(time.gmtime)
