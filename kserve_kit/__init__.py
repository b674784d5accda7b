"""kserve-kit: serve Hugging Face text classifiers on KServe.

`kserve_kit` holds what the predictor, the transformer and the batch pipeline share. It never
imports torch, so the transformer image stays small.
"""

__version__ = "0.1.0"
