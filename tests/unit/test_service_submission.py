"""A submission's checks that need no git server and no Snakemake: finding the workflow's
files, the DIDs, and credentials kept out of repository URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lofar_datalake.service.git_checkout import checkout, safe_url
from lofar_datalake.service.submission import SubmissionError, check_dids, find_workflow

SNAKEFILE = b"rule all:\n    input: []\n"
CONFIG = b"threshold: 5\n"


# --- the workflow's files -----------------------------------------------------------------------

@pytest.fixture()
def root(tmp_path: Path) -> Path:
    made = tmp_path / "workflow"
    (made / "workflow").mkdir(parents=True)
    (made / "workflow" / "Snakefile").write_bytes(SNAKEFILE)
    (made / "config").mkdir()
    (made / "config" / "config.yaml").write_bytes(CONFIG)
    return made


def test_the_snakefile_is_found_where_snakemake_looks_by_default(root):
    snakefile, config = find_workflow(root, None, "config/config.yaml")
    assert snakefile == (root / "workflow" / "Snakefile").resolve()
    assert config == (root / "config" / "config.yaml").resolve()
    (root / "Snakefile").write_bytes(SNAKEFILE)
    assert find_workflow(root, None, "config/config.yaml")[0] == (root / "Snakefile").resolve()


def test_a_named_snakefile_and_a_json_config_are_accepted(root):
    (root / "rules.smk").write_bytes(SNAKEFILE)
    (root / "config.json").write_text('{\n\t"threshold": 5\n}\n')
    assert find_workflow(root, "rules.smk", "config.json") == (
        (root / "rules.smk").resolve(), (root / "config.json").resolve())


def test_a_missing_config_or_snakefile_is_refused_by_name(root):
    with pytest.raises(SubmissionError, match=r"config file 'config\.yaml': not found"):
        find_workflow(root, None, "config.yaml")
    with pytest.raises(SubmissionError, match=r"Snakefile 'rules\.smk': not found"):
        find_workflow(root, "rules.smk", "config/config.yaml")
    (root / "workflow" / "Snakefile").unlink()
    with pytest.raises(SubmissionError, match="no Snakefile: looked for Snakefile"):
        find_workflow(root, None, "config/config.yaml")


def test_a_config_outside_the_root_is_refused(root, tmp_path):
    (tmp_path / "secret.yaml").write_text("password: x\n")
    with pytest.raises(SubmissionError, match=r"'\.\./secret\.yaml': leads outside"):
        find_workflow(root, None, "../secret.yaml")
    with pytest.raises(SubmissionError, match="relative to the workflow's root"):
        find_workflow(root, None, str(tmp_path / "secret.yaml"))
    (root / "config" / "link.yaml").symlink_to(tmp_path / "secret.yaml")
    with pytest.raises(SubmissionError, match=r"'config/link\.yaml': leads outside"):
        find_workflow(root, None, "config/link.yaml")
    (root / "Snakefile").symlink_to("/etc/passwd")
    with pytest.raises(SubmissionError, match="Snakefile 'Snakefile': leads outside"):
        find_workflow(root, None, "config/config.yaml")


def test_bad_yaml_is_refused_with_the_file_and_the_line(root):
    (root / "config" / "config.yaml").write_text("threshold: 5\nsamples: [a, b\nother: 1\n")
    with pytest.raises(SubmissionError) as caught:
        find_workflow(root, None, "config/config.yaml")
    message = str(caught.value)
    assert message.startswith("config file config/config.yaml: not valid YAML")
    assert "line 3" in message, message


def test_bad_json_is_refused_with_the_line(root):
    (root / "config.json").write_text('{"a": 1,\n "b": }\n')
    with pytest.raises(SubmissionError, match=r"config.json: not valid JSON: .* line 2"):
        find_workflow(root, None, "config.json")


def test_a_config_that_is_not_a_mapping_is_refused(root):
    (root / "config" / "config.yaml").write_text("- a\n- b\n")
    with pytest.raises(SubmissionError, match=r"must be a mapping .* not list"):
        find_workflow(root, None, "config/config.yaml")
    (root / "config" / "config.yaml").write_bytes(b"key: \xff\xfe\n")
    with pytest.raises(SubmissionError, match="not UTF-8"):
        find_workflow(root, None, "config/config.yaml")


# --- DIDs ---------------------------------------------------------------------------------------

def test_good_dids_come_back_normalised():
    assert check_dids([" lofar:L700001_SB000_uv.MS.tar ", "user.alice:/data/a-1.tar\n"],
                      ["lofar", "user.alice"]) == [
        "lofar:L700001_SB000_uv.MS.tar", "user.alice:/data/a-1.tar"]


def test_every_bad_did_is_named_at_once():
    bad = ["nocolon", "lofar:", "bad scope:x", "lofar:name with space", "other:L1",
           "lofar:../etc/passwd", "lofar:" + "n" * 251, "s" * 26 + ":x", "lofar:a;rm -rf /",
           "lofar:.hidden"]
    with pytest.raises(SubmissionError) as caught:
        check_dids(["lofar:good", *bad], ["lofar", "s" * 26])
    message = str(caught.value)
    assert message.startswith(f"{len(bad)} of the {len(bad) + 1} DIDs cannot be used")
    for did in bad:
        assert repr(did if len(did) <= 120 else did[:120] + "…") in message, did
    assert "'lofar:good'" not in message
    assert "scope 'other' is not one of yours (lofar" in message
    assert "at most 250 characters" in message and "at most 25 characters" in message


def test_no_dids_or_a_did_given_twice_is_refused():
    with pytest.raises(SubmissionError, match="no DIDs given"):
        check_dids([], ["lofar"])
    with pytest.raises(SubmissionError, match="'lofar:a ': given more than once"):
        check_dids(["lofar:a", "lofar:a "], ["lofar"])


def test_a_hostile_did_is_shown_on_one_line():
    with pytest.raises(SubmissionError) as caught:
        check_dids(["lofar:a\nInjected: line", "lofar:" + "x" * 5000], ["lofar"])
    message = str(caught.value)
    assert "\nInjected" not in message and len(message) < 1000


def test_credentials_never_leave_a_url():
    assert safe_url("https://alice:s3cret@git.example.org/a/b.git") == (
        "https://git.example.org/a/b.git")
    assert safe_url("https://tok@en@git.example.org/x") == "https://git.example.org/x"
    assert safe_url("https://git.example.org/flow@v1.git") == "https://git.example.org/flow@v1.git"
    assert safe_url("file:///srv/repo") == "file:///srv/repo"


@pytest.mark.parametrize("url", [
    "ssh://alice:s3cret@git.example.org/x.git", "http://alice:s3cret@git.example.org/x.git",
    "https://alice:s3cret/x@git.example.org/r.git", "https://git.example.org/x?token=s3cret",
    "https://alice:s3cret@git.example.org/x y", "https://alice:s3cret@:443/x",
])
def test_a_refused_url_never_shows_its_credentials(tmp_path, url):
    with pytest.raises(SubmissionError, match="repository URL") as caught:
        checkout(url, "0" * 40, tmp_path / "dest")
    assert "s3cret" not in str(caught.value), caught.value
    assert not (tmp_path / "dest").exists()
