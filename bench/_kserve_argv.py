"""Import `kserve.model_server` with an empty command line.

`kserve.model_server` parses `sys.argv` when first imported and would read the benchmark's own
flags as its own (or fail on them). Import this module before anything that imports kserve's
parser (`predictor.config`, `transformer.config`).
"""

import sys

_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve.model_server  # noqa: F401
finally:
    sys.argv = _argv
