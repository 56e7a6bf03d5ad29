# The README's two commands: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
WB     := $(BIN)/workbench
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint typecheck notebooks-test bench soak lab clean chromium lock contract-tests

# Every install takes its exact versions from constraints.txt (see `make lock`).
PIP    := $(BIN)/pip install --quiet -c constraints.txt

$(VENV)/.base: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	$(BIN)/python -m compileall -q workbench  # bytecode now, even where PYTHONDONTWRITEBYTECODE is set
	touch $@

# The notebooks name the kernel `workbench` (this venv's Python): papermill, nbval and JupyterLab
# find it in $(VENV)/share/jupyter/kernels.
KERNEL := $(BIN)/python -m ipykernel install --sys-prefix --name workbench \
            --display-name "workbench (.venv)" >/dev/null

$(VENV)/.dev: pyproject.toml constraints.txt $(VENV)/.base
	$(PIP) -e '.[dev]'
	$(KERNEL)
	touch $@

$(VENV)/.lab: pyproject.toml constraints.txt $(VENV)/.base
	$(PIP) -e '.[lab]'
	$(KERNEL)
	touch $@

# The peer engines of `workbench parity` (Backtrader, backtesting.py, NautilusTrader).
$(VENV)/.parity: pyproject.toml constraints.txt $(VENV)/.base
	$(PIP) -e '.[parity]'
	touch $@

# Headless Chromium for the report test (Debian's package; installed as root, e.g. in CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the HTML report test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

demo: $(VENV)/.base
	$(WB) ingest sample_data/btcusdt_1m_2024-01_synthetic.csv --symbol BTCUSDT
	$(WB) ingest sample_data/UNITTEST_BTC-1m.json --symbol UNITTESTBTC --gaps forward
	$(WB) backtest --config configs/sma_demo.yaml | tee $(VENV)/demo.out
	@run_id=$$(sed -n 's/^run_id=\([^ ]*\) .*/\1/p' $(VENV)/demo.out); \
	 run_dir=$$(sed -n 's/^run_id=[^ ]* dir=\(.*\)/\1/p' $(VENV)/demo.out); \
	 report=$$($(WB) report $$run_id) || exit 1; \
	 echo; \
	 echo "run id:        $$run_id"; \
	 echo "run directory: $$run_dir (trades.csv, orders.csv, fills.csv, equity.csv, run_manifest.json)"; \
	 echo "report:        $$report (self-contained HTML, opens offline)"; \
	 echo; \
	 echo "Try:"; \
	 echo "  $(WB) sql \"select trades, total_return_pct, max_drawdown_pct, sharpe, fees_quote from rpt.performance where run_id = '$$run_id'\""; \
	 echo "  $(WB) sql \"select symbol, entry_ts, exit_ts, qty, pnl from rpt.round_trips where run_id = '$$run_id' order by pnl desc limit 5\""

# .lab too: the explorer's browser test drives JupyterLab
test: $(VENV)/.dev $(VENV)/.lab $(VENV)/.parity chromium
	$(BIN)/ruff check workbench tests bench sample_data notebooks/conftest.py
	$(BIN)/mypy
	$(BIN)/pytest -m "not soak" -n 2 --dist worksteal
	$(BIN)/pytest --nbval-lax notebooks/
	$(WB) --warehouse test-artifacts/contract.duckdb contract-tests \
	  --junit test-artifacts/contract-tests.xml --json test-artifacts/contract-tests.json

# the port contract suites on paper and fake-binance; JUnit and JSON for CI; the result is
# recorded in the warehouse for the live gate (docs/operations.md, "Contract tests")
contract-tests: $(VENV)/.base
	$(WB) contract-tests --junit test-artifacts/contract-tests.xml \
	  --json test-artifacts/contract-tests.json

lint: $(VENV)/.dev
	$(BIN)/ruff check workbench tests bench sample_data notebooks/conftest.py

typecheck: $(VENV)/.dev
	$(BIN)/mypy

bench: $(VENV)/.dev $(VENV)/.parity
	$(BIN)/python -m compileall -q workbench  # time today's code as installed, not a stale .pyc recompiled per run
	$(BIN)/python bench/run.py
	$(BIN)/python bench/sweep.py
	$(BIN)/python bench/peers.py
	$(BIN)/python bench/fifo_views.py
	$(BIN)/python bench/live_soak.py
	$(BIN)/python bench/order_rtt.py

# the long soaks and crash sweeps `make test` leaves out (marker `soak`)
soak: $(VENV)/.dev
	$(BIN)/pytest -m soak

# JupyterLab on 127.0.0.1 with the project's kernel; notebooks read warehouse/workbench.duckdb.
# It serves working copies in lab/ (git-ignored; a missing one is copied from notebooks/), so
# running and saving notebooks never dirties the tracked ones (nor a run manifest's git SHA).
# Delete lab/NAME.ipynb to get the committed version back.
lab: $(VENV)/.lab
	@mkdir -p lab && for nb in notebooks/*.ipynb; do \
	  [ -e "lab/$${nb##*/}" ] || cp "$$nb" "lab/$${nb##*/}"; done
	WB_WAREHOUSE=$(CURDIR)/warehouse/workbench.duckdb WB_RUNS_DIR=$(CURDIR)/runs \
	  $(BIN)/jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir lab \
	  $(if $(filter 0,$(shell id -u)),--allow-root,)

# A deliberate upgrade: resolve the newest allowed versions in a scratch venv, write them to
# constraints.txt; then run `make bench` and commit both.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -e '.[dev,lab,parity]'
	{ echo "# Exact versions for make demo / make test / make lab (pip install -c constraints.txt)."; \
	  echo "# Regenerate deliberately with 'make lock', then rerun 'make bench' and commit both."; \
	  .venv-lock/bin/pip freeze --exclude-editable; } > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) warehouse runs reports .pytest_cache .mypy_cache .ruff_cache
