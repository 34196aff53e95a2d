# Two commands for a fresh machine: `make run` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
# CPU wheel on machines without a GPU; override e.g. TORCH_SPEC='torch==2.13.0' on a CUDA host.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.floodx-installed
CORES ?= all
# One device profile: make gpu-check writes it (not in --reduced mode), make plan reads it where it exists.
DEVICE_PROFILE ?= results/device_profile.json
# CONFIG=<overlay.yaml>: run, dryrun, report and plan take the same config overlay.
SNAKEMAKE_CONFIG = $(if $(CONFIG),--configfile $(CONFIG))

# A finished run's results page into docs/results/<NAME>/ (the README links there).
RUN ?= $(EVIDENCE_DIR)
NAME ?= evidence

.PHONY: help setup run evidence progress publish test bench report plan gpu-check dryrun lint clean-results

help:
	@echo "make run       set-up, then the whole DAG (embedded default; CONFIG=<overlay.yaml> for another)"
	@echo "make test      set-up, then the test suite"
	@echo "make bench     benchmark figures as name: value lines"
	@echo "make report    results/report.html of a finished run (CONFIG= as for run)"
	@echo "make dryrun    the jobs a run would start (CONFIG= as for run)"
	@echo "make plan      what a config costs before it runs (CONFIG=, RESULTS=, PLAN_CORES=, DEVICE_PROFILE=)"
	@echo "make evidence  the evidence run (config/evidence.yaml) in runs/evidence/; resumes with the same command"
	@echo "               (CONFIG=config/successors.yaml adds Flooding's successors to it)"
	@echo "make progress  what a run folder has left, in hours (RUN=runs/evidence, CONFIG= as for evidence)"
	@echo "make publish   a finished run's results page into docs/results/NAME (RUN=runs/evidence NAME=evidence)"
	@echo "make gpu-check on a GPU: BERT-base speed, Table 3 ratios, memory; writes DEVICE_PROFILE"
	@echo "make lint      snakemake --lint"
	@echo "make clean-results  delete results/ (not resources/)"

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# On a GPU host, Snakemake may start as many GPU jobs as there are slots (visible GPUs x FLOODX_JOBS_PER_GPU,
# floodx.devices); nothing is added where there is no GPU.
GPU_RESOURCES = $$(slots=$$($(BIN)/python -m floodx.devices --slots); [ "$$slots" -gt 0 ] && echo "--resources gpu=$$slots")

# Rules call `python -m floodx...`: the environment's interpreter must come first on PATH.
# After a kill -9 the same command resumes: floodx.locks releases the lock a stopped Snakemake
# left (only when none runs here) and the workflow profile reruns incomplete jobs.
run: $(STAMP)
	$(BIN)/python -m floodx.locks
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) $(GPU_RESOURCES) $(SNAKEMAKE_CONFIG)

# The evidence run (config/evidence.yaml) in its own folder, runs/evidence/ (about 3 hours on 2 cores);
# the same command resumes it after any stop. In the background: nohup make evidence > evidence.log 2>&1 &
EVIDENCE_DIR ?= runs/evidence
evidence: $(STAMP)
	mkdir -p $(EVIDENCE_DIR)
	$(BIN)/python -m floodx.locks --dir $(EVIDENCE_DIR)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake -s $(abspath workflow/Snakefile) -d $(EVIDENCE_DIR) \
		--configfile $(abspath config/evidence.yaml) $(if $(CONFIG),$(abspath $(CONFIG))) --cores $(CORES) $(GPU_RESOURCES)

publish: $(STAMP)
	$(BIN)/python -m floodx.results_page publish --results $(RUN)/results --to docs/results/$(NAME)

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m floodx.bench

# After `make run`: one HTML file with every table and figure (opens on what the run was).
report: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --report results/report.html $(SNAKEMAKE_CONFIG)

# What a run folder has left: its listed jobs costed from its own measurements (floodx.progress).
# RUN=runs/evidence (the default) reads config/evidence.yaml first, as make evidence does; CONFIG= the rest.
progress: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m floodx.progress --dir $(RUN) --cores $(or $(PLAN_CORES),$(shell nproc)) \
		--configfile $(if $(filter $(abspath $(RUN)),$(abspath $(EVIDENCE_DIR))),config/evidence.yaml) $(CONFIG)

# What a config will cost before it runs: make plan [CONFIG=config/paper.yaml]
# RESULTS=<folder>: where measured times are read (default results/, e.g. a finished `make run`);
# PLAN_CORES=<n>: also the wall-clock hours on one machine running n jobs at once.
plan: $(STAMP)
	$(BIN)/python -m floodx.plan $(SNAKEMAKE_CONFIG) $(if $(wildcard $(DEVICE_PROFILE)),--device-profile $(DEVICE_PROFILE)) \
		$(if $(RESULTS),--results $(RESULTS)) $(if $(PLAN_CORES),--cores $(PLAN_CORES))

# On a GPU machine: BERT-base step times, Table 3 ratios, probe, memory, bf16/fp32 agreement (minutes).
# GPU_CHECK_ARGS=--reduced runs the same path anywhere in seconds (the tests do).
gpu-check:
	PYTHONPATH=src $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m floodx.bench.gpu_check $(if $(findstring --reduced,$(GPU_CHECK_ARGS)),,--out $(DEVICE_PROFILE)) $(GPU_CHECK_ARGS)

dryrun: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake -n $(SNAKEMAKE_CONFIG)

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean-results:
	rm -rf results/*/ .snakemake/metadata
