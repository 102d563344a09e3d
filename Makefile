# Two commands matter: `make demo` (set up everything, start the local DataLake, run the main job)
# and `make test`. Everything else here is a building block of those two.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS := pipeline,sites,service,dev

.PHONY: install demo compare images test test-service test-sites test-science test-unit lint bench testbed-up testbed-sites testbed-down testbed-status clean

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

# The suite against real services (about 17 min), except three parts that each have a command
# of their own, so that no command passes 30 minutes on a 2-core machine; CI runs all four
# (.ci/run):
#   make test-service  the web service researchers submit workflows to (about 7 min);
#   make test-sites    the volunteered sites, Slurm and HTCondor for real, and the chains across
#                      sites (about 16 min);
#   make test-science  the science of LOFAR's calibrator strategy on wide fields through the
#                      station beam, on the host and in the stage images (about 16 min).
SERVICE := $(wildcard tests/integration/test_service_*.py)
ACROSS_SITES := tests/workflow/test_placement_run.py tests/workflow/test_pipeline_split.py
LINC_IN_CONTAINERS := tests/sites/test_linc_in_containers.py
SCIENCE := tests/workflow/test_pipeline_linc.py $(LINC_IN_CONTAINERS)

test: install $(VENV)/.htcondor-stamp
	PYTHON=$(PYTHON) scripts/install-system-deps.sh --tests
	$(BIN)/python -m pytest -ra --durations=15 tests --ignore=tests/sites \
		$(addprefix --ignore=,$(SERVICE) $(ACROSS_SITES) $(SCIENCE))

test-service: install $(VENV)/.htcondor-stamp
	PYTHON=$(PYTHON) scripts/install-system-deps.sh --tests
	$(BIN)/python -m pytest -ra --durations=15 $(SERVICE)

test-sites: install $(VENV)/.htcondor-stamp
	PYTHON=$(PYTHON) scripts/install-system-deps.sh --tests
	$(BIN)/python -m pytest -ra --durations=15 tests/sites $(ACROSS_SITES) \
		--ignore=$(LINC_IN_CONTAINERS)

test-science: install $(VENV)/.htcondor-stamp
	PYTHON=$(PYTHON) scripts/install-system-deps.sh --tests
	$(BIN)/python -m pytest -ra --durations=15 $(SCIENCE)

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

# Benchmarks (not tests): each figure against a baseline measured in the same run, medians of
# REPEAT (>= 3) repetitions with their spread, the targets met or not, the machine, load,
# date and commit; small JSON in $(BENCH_RESULTS) (bench/results/ is committed), then the
# README's Performance table generated from it (bench/summary.py). Sized to the targets: about
# 30 minutes on 2 cores for the DataLake benchmarks (measured under load), plus the tape and
# placement ones below. A quick look, results kept out of the committed ones:
#   make bench BENCH_RESULTS=/tmp/bench RESOLUTION_SIZES=1000 SITE_MIB=64 STAGING_FILES=4 \
#        STAGING_FILE_MIB=8 SCALE_SIZES=61
# (also RESOLUTION_ARGS, SCALE_ARGS, STAGING_ARGS, UPLOAD_ARGS, END_TO_END_ARGS, COMPUTE_ARGS,
# TAPE_ARGS, PLACEMENT_ARGS). bench_tape.py starts a testbed of its own (its tape library's
# recall time and drives set): 3 repetitions of three variants and the baseline at 48 subbands,
# about 40 minutes. bench_placement.py starts one too: three sites, an observation spread
# unevenly, the plan against all-at-one-site and round-robin, 3 repetitions, about 40 minutes.
BENCH_RESULTS    ?= bench/results
REPEAT           ?= 3
RESOLUTION_SIZES ?= 1000,10000
SCALE_SIZES      ?= 61,244
SITE_MIB         ?= 1024
STAGING_FILES    ?= 32
STAGING_FILE_MIB ?= 64
TAPE_SUBBANDS    ?= 48
PLACEMENT_ARGS   ?=
bench: install
	$(BIN)/lofar-datalake testbed up
	$(BIN)/python bench/bench_resolution.py --profile --repeat $(REPEAT) --sizes $(RESOLUTION_SIZES) \
		--json $(BENCH_RESULTS)/resolution.json $(RESOLUTION_ARGS)
	$(BIN)/python bench/bench_scale.py --sizes $(SCALE_SIZES) --observations 1 --repeat $(REPEAT) \
		--json $(BENCH_RESULTS)/scale.json $(SCALE_ARGS)
	$(BIN)/python bench/bench_staging.py all --repeat $(REPEAT) --site-mib $(SITE_MIB) \
		--files $(STAGING_FILES) --file-mib $(STAGING_FILE_MIB) --out $(BENCH_RESULTS) $(STAGING_ARGS)
	$(BIN)/python bench/bench_upload.py --json $(BENCH_RESULTS)/upload.json $(UPLOAD_ARGS)
	$(BIN)/python bench/bench_end_to_end.py --reps $(REPEAT) --json $(BENCH_RESULTS)/end_to_end.json \
		$(END_TO_END_ARGS)
	$(BIN)/python bench/bench_compute.py --run-dir benchmarks/end_to_end/rule/rep-0/local \
		--json $(BENCH_RESULTS)/compute.json $(COMPUTE_ARGS)
	$(BIN)/python bench/bench_compute.py --linc --json $(BENCH_RESULTS)/compute_linc.json
	$(BIN)/python bench/bench_tape.py --subbands $(TAPE_SUBBANDS) --json $(BENCH_RESULTS)/tape.json \
		$(TAPE_ARGS)
	$(BIN)/python bench/bench_placement.py --reps $(REPEAT) --json $(BENCH_RESULTS)/placement.json \
		$(PLACEMENT_ARGS)
	$(BIN)/python bench/summary.py --dir $(BENCH_RESULTS) \
		$(if $(filter bench/results,$(BENCH_RESULTS)),--write-readme)

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
