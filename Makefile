# sagalang: `make demo` and `make test` work on a fresh clone with nothing installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SAGALANG_TEST_POSTGRES_DSN ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: demo test test-slow lint typecheck pytest graphviz venv clean docs bench vsix chromium vendor-htmx ui-screenshots

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

# The web view's browser tests drive Debian's Chromium (a browser cannot be downloaded here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium with apt-get"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser tests will fail under CI=true"; \
	  else echo "warning: chromium not found and apt-get is not usable; install chromium for the browser tests"; fi; }

# The web view serves htmx from the package (no CDN): refresh it from npm with
# `make vendor-htmx HTMX_VERSION=x.y.z`; sagalang/ui/static/VENDORED.txt records what is there.
HTMX_VERSION ?= 2.0.11
vendor-htmx:
	@tmp=$$(mktemp -d) && (cd $$tmp && npm pack -q htmx.org@$(HTMX_VERSION) >/dev/null && tar xzf htmx.org-$(HTMX_VERSION).tgz) && \
	  cp $$tmp/package/dist/htmx.min.js sagalang/ui/static/htmx.min.js && \
	  cp $$tmp/package/LICENSE sagalang/ui/static/htmx.LICENSE && \
	  license=$$(node -p "require('$$tmp/package/package.json').license") && rm -rf $$tmp && \
	  echo "htmx.min.js: htmx.org $(HTMX_VERSION) from npm (dist/htmx.min.js), licence $$license (htmx.LICENSE); refresh: make vendor-htmx HTMX_VERSION=x.y.z" \
	    > sagalang/ui/static/VENDORED.txt && cat sagalang/ui/static/VENDORED.txt

# docs/img/ui-*.png, the screenshots of docs/ui.md: the browser tests take them.
ui-screenshots: $(STAMP) graphviz chromium
	SAGALANG_UI_SCREENSHOTS=$(CURDIR)/docs/img $(BIN)/pytest -q -p no:xdist tests/test_ui_browser.py

# An example end to end on the embedded SQLite store (.sagalang/): check it, show its
# plan, run it once to completion and once with an injected failure that shows the
# compensation (exit 1 = compensated, as expected), then list the runs the store kept.
demo: $(STAMP)
	$(BIN)/sagalang validate specs/examples
	$(BIN)/sagalang plan specs/examples/order.saga
	$(BIN)/sagalang run specs/examples/order.saga --input specs/examples/order.input.json
	$(BIN)/sagalang run specs/examples/order.saga --input specs/examples/order.input.json --fail-at ship || test $$? -eq 1
	$(BIN)/sagalang list
	@echo
	@echo "See these runs in a browser: $(BIN)/sagalang ui   (then open http://127.0.0.1:8765/)"
	@echo "  needs the ui extra, which .venv has; elsewhere: pip install 'sagalang[ui]'"

LINTED := sagalang tests bench scripts docs/tutorial docs/testing docs/examples specs/examples/handlers

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy --strict sagalang

pytest: $(STAMP) graphviz chromium
	$(BIN)/pytest -q -n 2

# The whole suite: lint, types, tests (the docs site is built strictly inside the tests).
test: lint typecheck pytest

# The long crash matrix (every example, a failure injected at each step) and hook-env builds.
test-slow: $(STAMP) graphviz chromium
	$(BIN)/pytest -q -n 2 -m slow

# Every benchmark with the peers installed in their own environment (bench/.venv):
# bench/results.json and docs/benchmarks.md.
BENCH_VENV := bench/.venv
$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[postgres,lsp,ui]' transitions python-statemachine sismic dbos matplotlib
	touch $@

bench: $(BENCH_VENV)/.installed graphviz
	$(BENCH_VENV)/bin/python bench/run_all.py

# The documentation site, built strictly (a broken link, a missing page or a
# missing --8<-- include fails) into site/; the CLI reference is generated
# from the commands during the build (scripts/gen_cli_docs.py is a MkDocs hook).
docs: $(STAMP) docs-diagrams
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# docs/img/*.svg and the gallery in docs/diagrams.md, generated from specs/examples (needs `dot`).
.PHONY: docs-diagrams
docs-diagrams: $(STAMP) graphviz
	$(PY) scripts/gen_diagrams.py

# The VS Code extension (editors/vscode): its npm packages, then the .vsix built by @vscode/vsce.
VSCODE := editors/vscode
vsix: $(VSCODE)/node_modules/.package-lock.json
	cd $(VSCODE) && npx --no-install vsce package --allow-missing-repository --out sagalang.vsix
	@echo "built $(VSCODE)/sagalang.vsix; install it with: code --install-extension $(VSCODE)/sagalang.vsix"

$(VSCODE)/node_modules/.package-lock.json: $(VSCODE)/package-lock.json
	cd $(VSCODE) && npm ci --no-audit --no-fund --loglevel=error

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
