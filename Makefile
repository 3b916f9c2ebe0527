# depthlab — every target sets itself up: a fresh machine needs nothing but python3 (and root for apt).
PY      := .venv/bin/python
STAMP   := .venv/.depthlab-installed
FMNIST  := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo demo-replication publish-demo study publish-study test test-slow test-gpu lint setup data browser fonts locales clean

# pyproject.toml gives ranges; constraints.txt pins the exact versions the tests run with (torch included).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's real Fashion-MNIST (the built-in default dataset); needs root, skipped politely otherwise.
data:
	@if [ ! -f $(FMNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "note: run 'sudo apt-get install dataset-fashion-mnist' for the real data"; fi; fi

# A CJK font for figures and reports in Japanese and Korean (`--lang ja|ko`): Debian's Noto Sans CJK, found by
# matplotlib; needs root, skipped politely otherwise (figures then warn of missing glyphs).
fonts:
	@if ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq fonts-noto-cjk; \
	  else echo "note: run 'sudo apt-get install fonts-noto-cjk' for Japanese and Korean figures"; fi; fi

# The gettext catalogues (src/depthlab/locale): extract every _()/N_() message of the Python source and the
# report template (babel.cfg; its paths are relative to the repository root, where extraction starts) into
# build/depthlab.pot, merge it into each language's .po (translations are kept; new messages start empty, i.e.
# English; a missing .po is created), and compile the .mo files the package reads. Run after changing a message,
# translate the new ones, run again; commit the .po and .mo files (tests/test_i18n_catalogues.py checks that
# every message is translated with the msgid's {fields}, and that the .mo are current). The .mo are written by
# Babel's write_mo without `pybabel compile`'s checks: those read "10% of" as a %-placeholder, and depthlab's
# messages use {fields} only.
LOCALE := src/depthlab/locale
locales: $(STAMP)
	mkdir -p build
	.venv/bin/pybabel -q extract -F babel.cfg -k _ -k N_ --no-location --sort-output --project depthlab \
	  -o build/depthlab.pot .
	for lang in ja ko; do \
	  .venv/bin/pybabel -q update -i build/depthlab.pot -d $(LOCALE) -D depthlab -l $$lang --init-missing \
	    --no-fuzzy-matching --ignore-obsolete --width 120 || exit 1; \
	  $(PY) -c "import sys; from babel.messages import pofile, mofile; \
	    mofile.write_mo(open(sys.argv[2], 'wb'), pofile.read_po(open(sys.argv[1], 'rb')))" \
	    $(LOCALE)/$$lang/LC_MESSAGES/depthlab.po $(LOCALE)/$$lang/LC_MESSAGES/depthlab.mo || exit 1; \
	done

# Headless Chromium for the report test.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "note: run 'sudo apt-get install chromium' for the report test"; fi; fi

# Train one study directory with $(WORKERS) worker processes (default: one per core; `depthlab study
# --workers`, README "Several workers"), on $(DEVICE) (default cpu). On the CPU each worker has one torch
# thread: every run is then single-threaded however many workers share the grid, so its bits do not depend on
# the machine's core count. DEVICE=cuda puts every worker on the GPU (several small nets keep it busier than
# one), each with an equal share of the cores. $(1): the `depthlab study` arguments, $(2): the study
# directory (the extra workers log to $(2).workerN.log; this one prints, answers last).
# The reader's language of the answers the study prints, its report and figures: `make demo LANG=ja` (or ko,
# or a locale name such as ja_JP.UTF-8). Only a LANG given on make's command line is passed on as --lang;
# otherwise depthlab reads the locale as gettext does (LANGUAGE, LC_ALL, LC_MESSAGES, LANG), else English.
# results.json stays English whatever the language.
LANG_FLAG = $(if $(filter command line,$(origin LANG)),--lang $(firstword $(subst _, ,$(subst ., ,$(LANG)))))
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
DEVICE ?= cpu
WORKER_THREADS = $(if $(filter cpu,$(DEVICE)),1,$(shell n=$$(( $$(nproc) / $(WORKERS) )); echo $$(( n > 0 ? n : 1 ))))
define workers
OMP_NUM_THREADS=$(WORKER_THREADS) $(PY) -m depthlab study $(1) --device $(DEVICE) --workers $(WORKERS) --out $(2) $(LANG_FLAG)
endef

# The main job: the quick degradation study on the built-in Fashion-MNIST (its WORKERS workers), then its
# report (+ its figures as PNG); the report command prints the answers first. Re-running skips finished runs
# and resumes interrupted ones. runs/demo/timing.json records the wall time of this invocation (study +
# report; the set-up above is not counted).
demo: $(STAMP) data fonts
	@start=$$(date +%s); \
	$(call workers,degradation --preset quick,runs/demo) && \
	$(PY) -m depthlab report runs/demo --out runs/demo/report.html --figures runs/demo/figures $(LANG_FLAG) && \
	printf '{"command": "make demo", "workers": %s, "wall_seconds": %s, "load_average_1min_at_end": %s}\n' \
	  $(WORKERS) $$(( $$(date +%s) - start )) "$$(cut -d' ' -f1 /proc/loadavg)" > runs/demo/timing.json
	@echo "report: $(CURDIR)/runs/demo/report.html"

# The number of seeds a study's preset runs (the replication starts past them).
preset_seeds = $(shell $(PY) -c "from depthlab.studies import get_study; print(get_study('$(1)').presets['$(2)'].seeds)")

# The same study on fresh seeds (6-11: past the demo's 0-5), for `depthlab replicate`.
demo-replication: $(STAMP) data
	@start=$$(date +%s); \
	$(call workers,degradation --preset quick --seed-offset $(call preset_seeds,degradation,quick),runs/demo-replication) && \
	$(PY) -m depthlab report runs/demo-replication --out runs/demo-replication/report.html \
	  --figures runs/demo-replication/figures $(LANG_FLAG) && \
	printf '{"command": "make demo-replication", "workers": %s, "wall_seconds": %s, "load_average_1min_at_end": %s}\n' \
	  $(WORKERS) $$(( $$(date +%s) - start )) "$$(cut -d' ' -f1 /proc/loadavg)" > runs/demo-replication/timing.json
	@echo "report: $(CURDIR)/runs/demo-replication/report.html"

# Copy the demo's and its replication's artifacts (results.json, timing.json, figures; the answers in Japanese
# and Korean) to results/degradation-quick and results/degradation-quick-replication, which the READMEs quote (tests
# check the READMEs against them), pool the two (all 12 seeds, no training) into the replication's pooled/,
# and record which findings the replication reproduces and what the pooled seeds say.
publish-demo:
	mkdir -p results/degradation-quick/figures results/degradation-quick-replication/figures
	cp runs/demo/results.json runs/demo/timing.json results/degradation-quick/
	cp runs/demo/figures/*.png results/degradation-quick/figures/
	# The answers read back in Japanese and Korean, which README.ja.md and README.ko.md quote.
	for lang in ja ko; do \
	  $(PY) -m depthlab report runs/demo --results results/degradation-quick/results.$$lang.json --lang $$lang \
	    || exit 1; \
	done
	cp runs/demo-replication/results.json runs/demo-replication/timing.json results/degradation-quick-replication/
	cp runs/demo-replication/figures/*.png results/degradation-quick-replication/figures/
	# One thread, as the demo's workers: the pool recomputes the shattered-gradient lines, whose bits (a
	# plain net's gradient is close to white noise along the line) depend on the thread count.
	OMP_NUM_THREADS=1 $(PY) -m depthlab pool runs/demo runs/demo-replication --out runs/demo-pooled
	mkdir -p results/degradation-quick-replication/pooled
	cp runs/demo-pooled/results.json results/degradation-quick-replication/pooled/
	$(PY) -m depthlab replicate results/degradation-quick results/degradation-quick-replication \
	  --pooled results/degradation-quick-replication/pooled \
	  --out results/degradation-quick-replication/replication.json

# Any study's preset (PRESET, default quick) and its replication on fresh seeds, e.g.
# `make study STUDY=vgg-depth` or `make study STUDY=degradation PRESET=standard`: runs/STUDY-PRESET (seeds
# 0..N-1, N the preset's seed count) and runs/STUDY-PRESET-replication (seeds N..2N-1), each with its report, figures and timing.json (the wall
# time of that study + report). `make publish-study STUDY=... PRESET=...` copies them to results/ (which the
# README quotes), pools the two (no training) and records which findings the replication reproduces and what
# the pooled seeds say.
# WORKERS and DEVICE as for the demo: `make study STUDY=degradation PRESET=gpu DEVICE=cuda WORKERS=4`.
STUDY ?= vgg-depth
PRESET ?= quick
study: $(STAMP) data
	@for part in $(PRESET):0 $(PRESET)-replication:$(call preset_seeds,$(STUDY),$(PRESET)); do \
	  dir=runs/$(STUDY)-$${part%%:*}; start=$$(date +%s); \
	  $(call workers,$(STUDY) --preset $(PRESET) --seed-offset $${part##*:},$$dir) && \
	  $(PY) -m depthlab report $$dir --out $$dir/report.html --figures $$dir/figures $(LANG_FLAG) && \
	  printf '{"command": "make study STUDY=%s PRESET=%s DEVICE=%s WORKERS=%s (%s)", "workers": %s, "device": "%s", "wall_seconds": %s, "load_average_1min_at_end": %s}\n' \
	    $(STUDY) $(PRESET) $(DEVICE) $(WORKERS) $$dir $(WORKERS) $(DEVICE) $$(( $$(date +%s) - start )) "$$(cut -d' ' -f1 /proc/loadavg)" > $$dir/timing.json \
	  || exit 1; \
	done

publish-study:
	@for part in $(PRESET) $(PRESET)-replication; do \
	  mkdir -p results/$(STUDY)-$$part/figures && \
	  cp runs/$(STUDY)-$$part/results.json runs/$(STUDY)-$$part/timing.json results/$(STUDY)-$$part/ && \
	  cp runs/$(STUDY)-$$part/figures/*.png results/$(STUDY)-$$part/figures/ || exit 1; \
	done
	$(PY) -m depthlab pool runs/$(STUDY)-$(PRESET) runs/$(STUDY)-$(PRESET)-replication \
	  --out runs/$(STUDY)-$(PRESET)-pooled
	mkdir -p results/$(STUDY)-$(PRESET)-replication/pooled
	cp runs/$(STUDY)-$(PRESET)-pooled/results.json results/$(STUDY)-$(PRESET)-replication/pooled/
	$(PY) -m depthlab replicate results/$(STUDY)-$(PRESET) results/$(STUDY)-$(PRESET)-replication \
	  --pooled results/$(STUDY)-$(PRESET)-replication/pooled \
	  --out results/$(STUDY)-$(PRESET)-replication/replication.json

# The tests of what --precision auto does run under DEPTHLAB_CPU_BF16=0 and =1 within the suite (the cpu_bf16
# fixture), so one run covers CPUs with and without native bf16; a test that compares numbers pins its precision.
test: $(STAMP) data browser fonts
	$(PY) -m pytest -q

test-slow: $(STAMP) data browser
	$(PY) -m pip install -q -e '.[test,ray]'
	$(PY) -m pytest -q -m slow

# The CUDA path (bf16 autocast, --compile, resume, eval on the GPU); every test skips without CUDA.
test-gpu: $(STAMP)
	$(PY) -m pytest -q -m gpu

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf .venv runs build *.egg-info src/*.egg-info
