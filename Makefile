# depthlab — every target sets itself up: a fresh machine needs nothing but python3 (and root for apt).
PY      := .venv/bin/python
STAMP   := .venv/.depthlab-installed
FMNIST  := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test test-slow lint setup data browser clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's real Fashion-MNIST (the built-in default dataset); needs root, skipped politely otherwise.
data:
	@if [ ! -f $(FMNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "note: run 'sudo apt-get install dataset-fashion-mnist' for the real data"; fi; fi

# Headless Chromium for the report test.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "note: run 'sudo apt-get install chromium' for the report test"; fi; fi

# The main job: the quick degradation study on the built-in Fashion-MNIST, then its report.
# Re-running skips finished runs and resumes interrupted ones.
demo: $(STAMP) data
	$(PY) -m depthlab experiment degradation --preset quick --out runs/demo
	$(PY) -m depthlab report runs/demo --out runs/demo/report.html
	@echo "report: $(CURDIR)/runs/demo/report.html"

test: $(STAMP) data browser
	$(PY) -m pytest -q

test-slow: $(STAMP) data browser
	$(PY) -m pip install -q -e '.[test,ray]'
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf .venv runs build *.egg-info src/*.egg-info
