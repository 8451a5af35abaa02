# sagalang: `make demo` and `make test` work on a fresh clone with nothing installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SAGALANG_TEST_POSTGRES_DSN ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: demo test lint typecheck pytest graphviz venv clean docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# SVG/PNG rendering needs Graphviz's `dot`; install Debian's package when apt is usable.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing graphviz (dot) with apt-get"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) \
	      || echo "warning: could not install graphviz; SVG/PNG tests will fail"; \
	  else echo "warning: Graphviz 'dot' not found and apt-get is not usable; install graphviz"; fi; }

demo: $(STAMP)
	$(BIN)/sagalang validate specs/examples
	$(BIN)/sagalang plan specs/examples/order.saga

lint: $(STAMP)
	$(BIN)/ruff check sagalang tests bench
	$(BIN)/ruff format --check sagalang tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict sagalang

pytest: $(STAMP) graphviz
	$(BIN)/pytest -q -n 2

test: lint typecheck pytest

# The documentation site, built strictly (a broken link, a missing page or a
# missing --8<-- include fails) into site/; the CLI reference is generated
# from the commands during the build (scripts/gen_cli_docs.py is a MkDocs hook).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# docs/img/*.svg and the gallery in docs/diagrams.md, generated from specs/examples (needs `dot`).
.PHONY: docs-diagrams
docs-diagrams: $(STAMP) graphviz
	$(PY) scripts/gen_diagrams.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
