"""Peers serving the same model for the benchmark: PyTriton and a plain unbatched KServe model."""
