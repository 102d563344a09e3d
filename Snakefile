# Entry point in the repository root; the workflow is workflow/Snakefile. Snakemake never takes
# the default target from an included file, hence the rule below.
include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
