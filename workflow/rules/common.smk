# Config and sheet validation, the table of subbands, the rules' threads and resources (from the
# workflow profile), DataLake DIDs, and the input functions of the rules.
import csv
import os
import shutil
import time
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError

from lofar_datalake.pipeline import placement_config

SCHEMAS = Path(workflow.current_basedir).parent / "schemas"
# The one place where the threads and resources per rule are written (`set-threads`,
# `set-resources`) is the workflow profile, which Snakemake applies to every run of this
# checkout. The rules take the same values from it, so that a run without it
# (`--workflow-profile none`, e.g. under a site profile with values of its own) gets them too.
WORKFLOW_PROFILE = Path(workflow.current_basedir).parents[1] / "profiles" / "default"


def schema_problems(instance, schema_file, field="key"):
    """One line per problem, naming the key, instead of Snakemake's dump of the whole schema and
    instance: unknown keys said as such (with the allowed ones), patterns by their description.
    """
    schema = yaml.safe_load((SCHEMAS / schema_file).read_text())
    problems = []
    errors = jsonschema.Draft202012Validator(schema).iter_errors(instance)
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = list(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - set(allowed)):
                name = f"{where}.{key}" if where else key
                problems.append(
                    f"unknown {field} {name!r} (allowed: {', '.join(allowed)})"
                )
        elif error.validator == "pattern" and error.schema.get("description"):
            problems.append(
                f"{field} {where!r}: {error.instance!r} is not "
                f"{error.schema['description']}"
            )
        else:
            problems.append(f"{field} {where or '(top level)'!r}: {error.message}")
    return problems


def read_workflow_profile():
    path = WORKFLOW_PROFILE / "config.yaml"
    if not path.is_file():
        raise WorkflowError(
            f"{path} is missing: it sets each rule's threads and resources"
        )
    return yaml.safe_load(path.read_text()) or {}


_PROFILE = read_workflow_profile()


def rule_threads(name):
    """The threads of rule `name` in the workflow profile (1 for a rule it does not list)."""
    return int((_PROFILE.get("set-threads") or {}).get(name, 1))


def rule_resources(name):
    """The resources (mem_mb, runtime) of rule `name` in the workflow profile."""
    return dict((_PROFILE.get("set-resources") or {}).get(name) or {})


_problems = schema_problems(config, "config.schema.yaml")
if _problems:
    raise WorkflowError(
        "invalid configuration (config/config.yaml and --config):\n  "
        + "\n  ".join(_problems)
    )


# Paths in the config are relative to the working directory. One not found there is looked up
# in this checkout, so that a run in a directory of its own (`compare`, a service's runs, any
# --directory) still finds the files the checkout ships: its sheet, sky model and truth.
CHECKOUT = Path(workflow.current_basedir).parents[1]
for _key in ("observations", "truth", "calibration.skymodel", "local.data_dir"):
    *_parents, _leaf = _key.split(".")
    _holder = config
    for _part in _parents:
        _holder = _holder[_part]
    _value = _holder.get(_leaf)
    if _value and not Path(_value).is_absolute() and not Path(_value).exists():
        if (CHECKOUT / _value).exists():
            _holder[_leaf] = str(CHECKOUT / _value)


def missing_file(key, path):
    return (
        f"{key}: {path} does not exist (in {Path.cwd()}). The shipped config/config.yaml "
        f"names the demo observation: run `make demo` first, or set `{key}` to your own."
    )


def configured_file(key):
    """An input or params function for the path config key `key` (dotted) names, checked as
    the DAG is built (not when the Snakefile is read: `--lint` and jobs need none of them).
    """

    def existing(wildcards):
        value = config
        for part in key.split("."):
            value = value[part]
        if value and not Path(value).exists():
            raise WorkflowError(missing_file(key, value))
        return value

    return existing


def read_observations(path):
    """Rows of the observation sheet, all validated before any is used (no pandas needed)."""
    with open(path, newline="") as fh:
        rows = [dict(row) for row in csv.DictReader(fh, delimiter="\t")]
    problems = []
    for line, row in enumerate(rows, start=2):
        for problem in schema_problems(row, "observations.schema.yaml", "column"):
            # An unknown column is the header's problem: said once, not on every row.
            text = (
                problem if problem.startswith("unknown") else f"row {line}: {problem}"
            )
            if text not in problems:
                problems.append(text)
    if problems:
        raise WorkflowError(
            f"invalid observation sheet {path}:\n  " + "\n  ".join(problems)
        )
    keys = [(r["observation"], r["subband"]) for r in rows]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise ValueError(
            f"observation sheet lists subbands twice: {sorted(duplicates)}"
        )
    return rows


if not Path(config["observations"]).is_file():
    raise WorkflowError(missing_file("observations", config["observations"]))
OBSERVATIONS = read_observations(config["observations"])
CALIBRATORS = sorted(
    {r["observation"] for r in OBSERVATIONS if r["role"] == "calibrator"}
)
TARGETS = sorted({r["observation"] for r in OBSERVATIONS if r["role"] == "target"})
for _row in OBSERVATIONS:
    if _row["role"] == "target" and (_row["calibrator"], _row["subband"]) not in {
        (r["observation"], r["subband"]) for r in OBSERVATIONS
    }:
        raise ValueError(
            f"{_row['observation']} SB{_row['subband']}: its calibrator "
            f"{_row['calibrator']!r} has no such subband in the sheet"
        )

# Which part of the chain this run does (placement.stage: all, preprocess or process), and the
# subbands it fetches, flags and averages itself (all of the sheet in an `all` run).
PLACEMENT = placement_config.Placement.from_config(config)
SHEET = [(r["observation"], r["subband"]) for r in OBSERVATIONS]
_problems = placement_config.problems(
    PLACEMENT, config["input_mode"], SHEET, config["observations"]
)
if _problems:
    raise WorkflowError(
        "invalid configuration (config/config.yaml and --config):\n  "
        + "\n  ".join(_problems)
    )
STAGE = PLACEMENT.stage
PREPROCESSED_HERE = set(PLACEMENT.selected(SHEET))
# A preprocessed subband as a file of this run, stored under placement.preprocessed.
PACKED = "results/preprocessed/{obs}_SB{sb}.MS.tar"

TRUTH = config.get("truth") or ""
# Jobs of `run:` rules re-read this file in a child process: the start time travels with the
# environment so that they see the run's, not their own.
RUN_STARTED = float(
    os.environ.setdefault("LOFAR_DATALAKE_RUN_STARTED", str(time.time()))
)
MANIFEST = "results/provenance.json"
STRATEGY_DIR = Path(workflow.current_basedir).parent / "strategies"


wildcard_constraints:
    obs=r"L\d+",
    sb=r"\d{3}",


def row(obs, sb):
    for r in OBSERVATIONS:
        if r["observation"] == obs and r["subband"] == sb:
            return r
    raise ValueError(f"{obs} SB{sb} is not in {config['observations']}")


def subbands(obs):
    return sorted(r["subband"] for r in OBSERVATIONS if r["observation"] == obs)


def did(name, query=False):
    """The DataLake DID of `name`, `scope:name`, or with `query` the storage plugin's query for
    it, `datalake://scope/name`. A name that gives its scope (`scope:name`, as the sheet's `did`
    column may) keeps it; any other is in the config's `datalake.scope`."""
    scope, sep, rest = name.partition(":")
    if not sep:
        scope, rest = config["datalake"]["scope"], name
    return f"datalake://{scope}/{rest}" if query else f"{scope}:{rest}"


def product_name(path):
    """The DID name a product is kept under, by its path under results/."""
    return f"{config['datalake']['products']}/{path}"


# DataLake inputs are declared here, while the Snakefile is read, not in the input function:
# the storage plugin then knows every DID before Snakemake asks about the first one and resolves
# all of them in one bulk pass instead of one catalogue request per subband.
RAW_DATALAKE = (
    {
        (r["observation"], r["subband"]): storage.datalake(did(r["did"], query=True))
        for r in OBSERVATIONS
        if (r["observation"], r["subband"]) in PREPROCESSED_HERE
    }
    if config["input_mode"] == "datalake"
    else {}
)
# A process run reads each averaged subband from the DataLake instead (declared here as well,
# for the same bulk resolution).
PREPROCESSED_DATALAKE = (
    {
        (obs, sb): storage.datalake(did(PLACEMENT.archive_name(obs, sb), query=True))
        for obs, sb in SHEET
    }
    if STAGE == placement_config.PROCESS
    else {}
)


def raw_archive(wildcards):
    """The `.tar` of one subband: a DataLake file through the `datalake` storage plugin,
    or a file under local.data_dir."""
    r = row(wildcards.obs, wildcards.sb)
    if config["input_mode"] == "datalake":
        return RAW_DATALAKE[(wildcards.obs, wildcards.sb)]
    return str(Path(config["local"]["data_dir"]) / r["path"])


def preprocessed_archive(wildcards):
    """The packed averaged subband a preprocess run stored (process stage)."""
    return PREPROCESSED_DATALAKE[(wildcards.obs, wildcards.sb)]


def stored_product(path):
    """Where a product under results/ is kept in the DataLake (datalake mode)."""
    return storage.datalake(did(product_name(path), query=True))


def stored_name(path):
    """The DID name a file `results/...` of this run is kept under: a packed subband under
    placement.preprocessed, every other product under datalake.products."""
    product = path.removeprefix("results/")
    if product.startswith("preprocessed/"):
        return f"{PLACEMENT.preprocessed}/{product.removeprefix('preprocessed/')}"
    return product_name(product)


def stored_copy(path):
    """The DataLake copy of a file `results/...` of this run (datalake mode)."""
    return storage.datalake(did(stored_name(path), query=True))


def strategy_file():
    """A strategy shipped in workflow/strategies/, or a path given in the config."""
    name = config["flagging"]["strategy"]
    shipped = STRATEGY_DIR / name
    return str(shipped if shipped.exists() else Path(name))


def scratch(path):
    """Intermediate Measurement Sets are removed once consumed, unless asked to keep them."""
    return directory(path) if config["keep_intermediate"] else temp(directory(path))


def all_products():
    """Every product and the run's provenance manifest; in datalake mode, their copies in the
    DataLake as well."""
    products = local_products() + [MANIFEST]
    if config["input_mode"] == "datalake":
        products += [stored_copy(p) for p in products]
    return products


def local_products():
    """The products of this run's part of the chain: a preprocess run's are the flag QA and
    the packed averaged data of its subbands; a process run's all but the flag QA."""
    products = []
    for r in OBSERVATIONS:
        obs, sb = r["observation"], r["subband"]
        if (obs, sb) in PREPROCESSED_HERE:
            products += [f"results/{obs}/qa/{obs}_SB{sb}_flags.png"]
            if STAGE == placement_config.PREPROCESS:
                products += [PACKED.format(obs=obs, sb=sb)]
        if r["role"] == "calibrator" and STAGE != placement_config.PREPROCESS:
            products += [f"results/{obs}/calibration/{obs}_SB{sb}.h5"]
            if (
                not LINC
            ):  # per-subband gains against the truth; `linc` scores its reduction
                products += [f"results/{obs}/qa/{obs}_SB{sb}_gains.png"]
        if r["role"] == "target" and LINC and STAGE != placement_config.PREPROCESS:
            products += [
                f"results/{obs}/calibration/{obs}_SB{sb}_selfcal{n}.h5"
                for n in range(1, SELFCAL_ROUNDS + 1)
            ]
    if STAGE == placement_config.PREPROCESS:
        return products
    for obs in CALIBRATORS if LINC else []:
        products += [
            f"results/{obs}/calibration/{obs}_transfer.h5",
            f"results/{obs}/calibration/{obs}_clocktec.json",
            f"results/{obs}/qa/{obs}_transfer.png",
            f"results/{obs}/qa/{obs}_transfer.json",
        ]
    for obs in TARGETS:
        products += [
            f"results/{obs}/image/{obs}-image.fits",
            f"results/{obs}/catalogue/{obs}.srl.fits",
            f"results/{obs}/catalogue/{obs}.srl.csv",
            f"results/{obs}/catalogue/{obs}.skymodel",
            f"results/{obs}/qa/{obs}_sources.png",
            f"results/{obs}/qa/{obs}_flux.png",
        ]
        # the first image, which the first round solves against when no survey does
        if LINC and not SURVEY_SKYMODEL:
            products += [f"results/{obs}/selfcal/{obs}-r0-image.fits"]
        if BEAM:
            products += [f"results/{obs}/catalogue/{obs}.pbcor.srl.csv"]
    return products


def manifest_input_dids():
    """The inputs as DIDs (`scope:name`), in datalake mode: the raw subbands this run
    preprocesses, or in a process run the preprocessed ones."""
    if config["input_mode"] != "datalake":
        return []
    if STAGE == placement_config.PROCESS:
        return [did(PLACEMENT.archive_name(obs, sb)) for obs, sb in SHEET]
    return [
        did(r["did"])
        for r in OBSERVATIONS
        if (r["observation"], r["subband"]) in PREPROCESSED_HERE
    ]


def manifest_local_inputs():
    """The raw inputs as files, in local mode."""
    if config["input_mode"] == "datalake":
        return []
    return [str(Path(config["local"]["data_dir"]) / r["path"]) for r in OBSERVATIONS]


def product_dids():
    """Product path -> its DID in the DataLake (datalake mode)."""
    if config["input_mode"] != "datalake":
        return {}
    return {p: did(stored_name(p)) for p in local_products() + [MANIFEST]}
