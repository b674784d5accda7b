# Reliability: load, faults and hostile input against the real servers (included by Makefile).
# `make test` runs tests/reliability at small sizes; these targets run the same tests at the
# sizes docs/reliability.md reports. Sizes are environment variables (tests/reliability/conftest.py).

SOAK_REQUESTS ?= 20000
SOAK_CONCURRENCY ?= 16
FUZZ_EXAMPLES ?= 1000
CHAOS_ROUNDS ?= 5

##@ Reliability

.PHONY: soak
soak: install ## Soak: 20,000 requests at concurrency 16 through the transformer, REST and gRPC mixed (about 2 min)
	KIT_SOAK_REQUESTS=$(SOAK_REQUESTS) KIT_SOAK_CONCURRENCY=$(SOAK_CONCURRENCY) \
	$(VENV)/bin/pytest -m reliability tests/reliability/test_soak.py -s $(PYTEST_ARGS)

.PHONY: chaos
chaos: install ## Faults under load (5 predictor kills per hop, SIGTERM, stall) and 1,000 fuzzed requests per server and kind: REST, gRPC, OpenAPI (about 9 min)
	KIT_CHAOS_ROUNDS=$(CHAOS_ROUNDS) KIT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	$(VENV)/bin/pytest -m reliability tests/reliability/test_chaos.py tests/reliability/test_fuzz.py \
		tests/reliability/test_fuzz_grpc.py tests/reliability/test_fuzz_openapi.py \
		tests/reliability/test_hostile_input.py -s $(PYTEST_ARGS)

.PHONY: test-reliability
test-reliability: install ## Run the reliability tier at the short sizes that `make test` uses
	$(VENV)/bin/pytest -m reliability $(PYTEST_ARGS)
