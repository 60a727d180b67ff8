# The two commands of the README: `make demo` (a whole simulated call, no account needed)
# and `make test`. Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-0.1
# Most tests wait on sockets and clocks, not the CPU: four workers bring the lane to about 100 s on two cores (CI: 102-106 s).
TEST_WORKERS ?= 4

.PHONY: demo test test-timing bench verify clean redis-server

$(STAMP): setup.cfg setup.py
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv python3-pip >/dev/null && \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,demo,twilio]'
	@touch $(STAMP)

demo: $(STAMP)
	LOCAL_BACKEND=1 $(BIN)/voicebridge demo

# The Redis backend's tests run a real redis-server (tests/conftest.py): installed here where missing
# (apt-get: root on Debian/Ubuntu, as CI is). Where it cannot be, those tests are skipped and say
# why -- except under CI (.ci/run sets CI=1), where they fail.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server not found; installing it (apt-get)"; \
	  { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || \
	  echo "could not install redis-server: the Redis backend's integration tests will be skipped"; }

test: $(STAMP) redis-server
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# Wall-clock checks (pacing stalls, latencies): figures that depend on the machine's load.
test-timing: $(STAMP)
	$(BIN)/python -m pytest -m timing

verify: $(STAMP)
	$(BIN)/voicebridge verify --seconds 20

bench: $(STAMP)
	$(BIN)/python benchmarks/pacing.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
