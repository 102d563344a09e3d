# Two commands matter: `make demo` (set up everything, start the local DataLake, run the main job)
# and `make test`. Everything else here is a building block of those two.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS := pipeline,sites,dev

.PHONY: install demo compare images test test-unit lint bench testbed-up testbed-sites testbed-down testbed-status clean

install: $(STAMP)

$(STAMP): pyproject.toml plugin/pyproject.toml testbed/pyproject.toml requirements.lock scripts/install-system-deps.sh
	PYTHON=$(PYTHON) scripts/install-system-deps.sh
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==26.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock \
		-e plugin -e '.[$(EXTRAS)]' -e testbed
	touch $@

# AUTH=token: the same demo with WLCG bearer tokens from the testbed's issuer as the only
# credential (no password, no client certificate).
AUTH ?= userpass
demo: install
	$(BIN)/lofar-datalake testbed up --auth $(AUTH)
	$(BIN)/lofar-datalake demo

# The demo observation on DataLake data vs on a local copy: verdict.json and report.html.
compare: install
	$(BIN)/lofar-datalake testbed up
	$(BIN)/lofar-datalake compare --demo

# The stage images of workflow/containers/*.def as sandbox directories under IMAGES_DIR (as
# root: Apptainer's build, or debootstrap + chroot where Apptainer is missing); prints the
# `containers:` block for config/config.yaml. ~3 min for all four.
IMAGES_DIR ?= images
images: install
	$(BIN)/lofar-datalake containers build-all --dir $(IMAGES_DIR)

# The HTCondor executor only for the tests (its bindings warn on every Snakemake start on a
# machine that is not an HTCondor submit host; the tests set CONDOR_CONFIG).
$(VENV)/.htcondor-stamp: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock \
		-e plugin -e '.[htcondor]'
	touch $@

test: install $(VENV)/.htcondor-stamp
	PYTHON=$(PYTHON) scripts/install-system-deps.sh --tests
	$(BIN)/python -m pytest -ra tests

test-unit: install
	$(BIN)/python -m pytest -ra tests/unit

# Ruff, the workflow's own lint and format, types, and the import contracts between the plugin,
# the pipeline tools and the testbed (pyproject.toml [tool.importlinter]).
lint: install
	$(BIN)/ruff check workflow/lib plugin/src testbed/src tests bench
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/Snakefile workflow/rules
	$(BIN)/mypy
	$(BIN)/lint-imports

# Benchmarks (not tests): figures and ratios against baselines measured in the same run, as JSON
# in benchmarks/, then one table of all (benchmarks/summary.md). Sized to stay under 20 minutes
# on 2 cores; scale up with e.g. make bench STAGING_ARGS="--file-mib 64 --repeat 5"
# SCALE_ARGS="--sizes 61,122,244 --observations 1,4" (also RESOLUTION_ARGS, COMPUTE_ARGS,
# END_TO_END_ARGS="--reps 3").
bench: install
	$(BIN)/lofar-datalake testbed up
	$(BIN)/python bench/bench_resolution.py --profile --repeat 3 --json benchmarks/resolution.json $(RESOLUTION_ARGS)
	$(BIN)/python bench/bench_scale.py --sizes 61,244 --observations 1 --json benchmarks/scale.json $(SCALE_ARGS)
	$(BIN)/python bench/bench_staging.py all --file-mib 16 $(STAGING_ARGS)
	$(BIN)/python bench/bench_end_to_end.py $(END_TO_END_ARGS)
	$(BIN)/python bench/bench_compute.py --run-dir benchmarks/end_to_end/rep-0/local $(COMPUTE_ARGS)
	$(BIN)/python bench/summary.py

testbed-up: install
	$(BIN)/lofar-datalake testbed up
# The testbed's volunteered compute sites next to the DataLake (as root): a one-node Slurm
# cluster and a personal HTCondor pool (its root is built once, ~1 min), with the Debian
# packages and the HTCondor executor they need. Then e.g.
#   .venv/bin/lofar-datalake compare --demo --profile profiles/testbed-htcondor
testbed-sites: install $(VENV)/.htcondor-stamp
	PYTHON=$(PYTHON) scripts/install-system-deps.sh --tests
	$(BIN)/lofar-datalake testbed up --sites slurm,htcondor
testbed-status: install
	$(BIN)/lofar-datalake testbed status
testbed-down: install
	$(BIN)/lofar-datalake testbed down

clean: testbed-down
	rm -rf .testbed demo
