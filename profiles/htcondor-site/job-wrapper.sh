#!/bin/bash
# The executable of every HTCondor job (the profile's `job_wrapper`). HTCondor starts it in the
# job's scratch sandbox with Snakemake's job command (minus a leading `python -m snakemake`).
# Workers share no file system with the submit host, only software: the workflow checkout and
# its Python environment, installed at the same path on every worker (e.g. CVMFS). The profile
# names that environment in LOFAR_DATALAKE_VENV (default-resources: environment).
set -euo pipefail
venv="${LOFAR_DATALAKE_VENV:?is unset: set it in the profile (default-resources: environment)}"
args=("$@")
# Snakemake prefixes `pip install --target .snakemake/pip-deployments <storage plugins> &&
# python -m snakemake` (the executor asks for its storage plugins to be deployed into the job);
# the workers' environment has them, and workers need not reach PyPI.
if [[ ${args[0]:-} == pip ]]; then
    for i in "${!args[@]}"; do
        [[ ${args[i]} == "&&" ]] && break
    done
    args=("${args[@]:i+1}")
    if [[ "${args[*]:0:3}" == "python -m snakemake" ]]; then
        args=("${args[@]:3}")
    fi
fi
# Snakemake passes the Snakefile relative to the submit directory (it expects sources to travel
# with the job); the checkout is installed here at the same path, so resolve it against the
# submit directory (the job's Iwd).
iwd=$(sed -n 's/^Iwd = "\(.*\)"$/\1/p' "${_CONDOR_JOB_AD:-/dev/null}")
for i in "${!args[@]}"; do
    next=$((i + 1))
    if [[ ${args[i]} == --snakefile && $next -lt ${#args[@]} && ${args[next]} != /* && -n $iwd ]]; then
        args[next]=$(realpath -m "$iwd/${args[next]}")
    fi
done
# Job accounts often have no (writable) home; Snakemake and matplotlib need one for caches.
if [[ -z ${HOME:-} || ! -w $HOME ]]; then
    export HOME="$PWD"
fi
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:${PATH:-/usr/local/bin:/usr/bin:/bin}"
# The profile's htcondor_transfer_output_files: HTCondor holds a job whose listed output is
# missing, and a rule need not write a log or a benchmark.
mkdir -p logs benchmarks .snakemake/datalake
# One line in the job's .out file: where it ran (the sandbox, not the submit directory).
echo "lofar-datalake job: host=$(uname -n) user=$(id -un) sandbox=$PWD"
exec "$venv/bin/python" -m snakemake "${args[@]}"
