# Reliability: load, faults and hostile input against the real servers (included by Makefile).
# `make test` runs tests/reliability at small sizes; these targets run the same tests at the
# sizes docs/reliability.md reports. Sizes are environment variables (tests/reliability/conftest.py).

SOAK_REQUESTS ?= 20000
SOAK_CONCURRENCY ?= 16
FUZZ_EXAMPLES ?= 1000
CHAOS_ROUNDS ?= 5
# The balanced hop (tests/reliability/test_balance.py): seconds of 16 clients over 3 predictors,
# and the predictors' gRPC connection age.
BALANCE_SECONDS ?= 30
BALANCE_CONNECTION_AGE_S ?= 10

##@ Reliability

.PHONY: soak
soak: install ## Soak: 20,000 requests at concurrency 16 through the transformer, REST and gRPC mixed (about 2 min)
	KIT_SOAK_REQUESTS=$(SOAK_REQUESTS) KIT_SOAK_CONCURRENCY=$(SOAK_CONCURRENCY) \
	$(VENV)/bin/pytest -m reliability tests/reliability/test_soak.py -s $(PYTEST_ARGS)

.PHONY: chaos
chaos: install ## Faults under load (5 predictor kills per hop, SIGTERM, stall; 3 predictors: balance, a 4th, rolling restart, a kill) and 1,000 fuzzed requests per server and kind (about 20 min)
	KIT_CHAOS_ROUNDS=$(CHAOS_ROUNDS) KIT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	KIT_BALANCE_SECONDS=$(BALANCE_SECONDS) KIT_BALANCE_CONNECTION_AGE_S=$(BALANCE_CONNECTION_AGE_S) \
	$(VENV)/bin/pytest -m reliability tests/reliability/test_chaos.py tests/reliability/test_balance.py \
		tests/reliability/test_fuzz.py \
		tests/reliability/test_fuzz_grpc.py tests/reliability/test_fuzz_openapi.py \
		tests/reliability/test_hostile_input.py -s $(PYTEST_ARGS)

.PHONY: test-reliability
test-reliability: install ## Run the reliability tier at the short sizes that `make test` uses
	$(VENV)/bin/pytest -m reliability $(PYTEST_ARGS)
