"""The kit's benchmark: the raw batched forward (the limit), the predictor alone, the whole
transformer-plus-predictor chain, and two peers serving the same model (PyTriton with its
dynamic batcher, and a plain unbatched KServe model), side by side in one run.

    python -m bench [--quick]       # make bench / make bench-quick

Only loopback addresses are ever sent traffic; every load loop is bounded in time and count.
"""
