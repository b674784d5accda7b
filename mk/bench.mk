# The benchmark: the raw forward (the limit), the predictor, the chain, PyTriton and an unbatched
# KServe model, side by side (included by Makefile). Results: bench/results/; write-up:
# docs/performance.md. Every target sends traffic to 127.0.0.1 only.

PYTRITON_VENV ?= .venv-pytriton
BENCH_ARGS ?=

##@ Benchmark

# The bench extra (matplotlib, psutil) on top of `make install`'s groups.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -c constraints.txt -e '.[bench]'
	touch $@

$(PYTRITON_VENV)/.installed: bench/requirements-pytriton.txt
	$(PYTHON_BOOTSTRAP) -m venv $(PYTRITON_VENV)
	$(PYTRITON_VENV)/bin/python -m pip install --quiet --upgrade pip==26.3
	$(PYTRITON_VENV)/bin/python -m pip install --quiet -r bench/requirements-pytriton.txt
	touch $@

.PHONY: bench-pytriton-venv
bench-pytriton-venv: $(PYTRITON_VENV)/.installed ## Make .venv-pytriton, PyTriton's own venv (numpy<2), for the peer

.PHONY: bench
bench: $(VENV)/.bench-installed model $(PYTRITON_VENV)/.installed ## Full benchmark (5 rounds, ~12 min): table, JSON and plot in bench/results/
	$(PY) -m bench $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: $(VENV)/.bench-installed model $(PYTRITON_VENV)/.installed ## Quick benchmark (2 short rounds, ~2 min), same targets and table
	$(PY) -m bench --quick $(BENCH_ARGS)

AB ?= "--forward_workers 1" "--forward_workers 2"

.PHONY: bench-ab
bench-ab: $(VENV)/.bench-installed model ## Predictor flags side by side: make bench-ab AB='"--compile none" "--compile trace"' (~4 min)
	$(PY) -m bench.ab $(AB) $(BENCH_ARGS)

.PHONY: bench-hop
bench-hop: $(VENV)/.bench-installed model ## The transformer's hop alone: single channel vs balanced (round_robin + retries), one predictor (~1 min)
	$(PY) -m bench.hop_ab $(BENCH_ARGS)

.PHONY: bench-report
bench-report: $(VENV)/.bench-installed ## Print the table of the last benchmark run again (bench/results/latest.json)
	$(PY) -m bench.report bench/results/latest.json

.PHONY: bench-batch
bench-batch: $(VENV)/.bench-installed model ## Offline batch command vs the raw batched forward; Parquet vs JSONL; 2 shards of 1 thread vs 1 process of 2 (3 rounds)
	$(PY) -m bench.batch_pipeline $(BENCH_ARGS)

.PHONY: bench-dtype
bench-dtype: $(VENV)/.bench-installed model ## Raw float32, bfloat16 and int8 forwards side by side; accuracy, decisions vs float32, memory (~3 min)
	$(PY) -m bench.dtype $(BENCH_ARGS)

# On a machine with a CUDA GPU and torch built for it: float16 against float32 raw forwards at
# batch sizes up to 128, the predictor and the chain up to 128 clients. No PyTriton, no REST:
# what is measured is how much of the GPU's forward the serving path keeps.
.PHONY: bench-gpu
bench-gpu: $(VENV)/.bench-installed model ## GPU benchmark (CUDA, float16): raw forward vs predictor vs chain, batch and clients up to 128 (< 5 min)
	$(PY) -m bench --device cuda --dtype auto --targets predictor,chain,raw --no_pytriton \
		--raw_batches 1,16,64,128 --concurrency 1,16,64,128 --max_batch_size 128 \
		--rounds 2 --seconds 3 --out bench/results/gpu $(BENCH_ARGS)
