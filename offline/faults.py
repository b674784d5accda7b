"""The batch command's testing hook: a crash at the worst moment, on request.

`KSERVE_KIT_BATCH_FAULT=after-write:N` kills the process with SIGKILL once chunk N's rows are
written and before its checkpoint is. The restart tests use it; never set it in production."""

from __future__ import annotations

import os

FAULT_ENV = "KSERVE_KIT_BATCH_FAULT"


def fault_after_write() -> int | None:
    """The chunk after whose write to die, or None (the hook is off)."""
    spec = os.environ.get(FAULT_ENV, "")
    return int(spec.split(":", 1)[1]) if spec.startswith("after-write:") else None
