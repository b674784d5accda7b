"""kserve-kit: serve Hugging Face text classifiers on KServe.

`kserve_kit` holds what the predictor, the transformer and the batch pipeline share. It never
imports torch, so the transformer image stays small.
"""

from importlib.metadata import PackageNotFoundError, version

# The release is written once, as pyproject.toml's version; the installed package's metadata
# carries it (an editable install keeps the version it was installed at: `make install` again
# after a bump). tests/manifests/test_version.py checks every copy that cannot read it.
try:
    __version__ = version("kserve-kit")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
