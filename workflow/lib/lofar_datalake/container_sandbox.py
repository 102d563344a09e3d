"""Build a stage image from its Apptainer recipe where Apptainer is not installed.

For `Bootstrap: debootstrap` recipes this does what `apptainer build --sandbox DIR recipe.def`
does: debootstrap the Debian release into a directory, run %post in it (chroot, /proc /sys
/dev mounted), store %environment, %labels, %runscript, %test and %help under /.singularity.d
where Apptainer looks for them, and run %test. The result is an Apptainer sandbox image: a
directory Apptainer runs as it is (unpacked images are how CVMFS distributes them).

The build uses the host's CA bundle for %post's downloads (sites behind an intercepting proxy)
and leaves it out of the image. The minimal Debian base is cached per release and mirror, so
the images of all stage families share one debootstrap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .container_recipe import LABEL_PREFIX, Recipe, RecipeError

DEFAULT_CACHE = Path("/var/cache/lofar-datalake/debootstrap")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA = "/.build-ca.pem"  # inside the rootfs during %post only
DIGEST_LABEL = LABEL_PREFIX + "rootfs-sha256"
RECIPE_LABEL = LABEL_PREFIX + "recipe-sha256"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Say = Callable[[str], None]


class BuildError(RuntimeError):
    """A sandbox build that cannot start or whose %post/%test failed."""


def print_progress(message: str) -> None:
    """Progress of a build, on stderr."""
    print(message, file=sys.stderr, flush=True)


def _check_can_build(recipe: Recipe) -> None:
    if recipe.header.get("Bootstrap", "").lower() != "debootstrap":
        raise RecipeError(f"{recipe.path}: only `Bootstrap: debootstrap` recipes build here")
    if os.geteuid() != 0:
        raise BuildError("building a sandbox image needs root (debootstrap, chroot, mounts)")
    if not shutil.which("debootstrap"):
        raise BuildError("debootstrap not found: apt-get install debootstrap")


def base_rootfs(os_version: str, mirror: str, cache: Path, say: Say = print_progress) -> Path:
    """A minimal Debian `os_version` rootfs, debootstrapped once per release and mirror."""
    key = hashlib.sha256(mirror.encode()).hexdigest()[:12]
    base = cache / f"{os_version}-minbase-{key}"
    if (base / ".complete").is_file():
        return base
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{base.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    say(f"debootstrap {os_version} from {mirror} (once per release; ~1 min)")
    cmd = ["debootstrap", "--variant=minbase", os_version, str(tmp), mirror]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"debootstrap failed ({done.returncode}):\n{done.stdout[-3000:]}")
    (tmp / ".complete").touch()
    shutil.rmtree(base, ignore_errors=True)
    tmp.rename(base)  # atomic: a half-built base is never taken for a complete one
    return base


@contextmanager
def _mounted(root: Path) -> Iterator[None]:
    """/proc, /sys and /dev inside `root` for the duration of the block."""
    mounts = [
        (["-t", "proc", "proc"], root / "proc"),
        (["-t", "sysfs", "sysfs"], root / "sys"),
        (["--bind", "/dev"], root / "dev"),
    ]
    done: list[Path] = []
    try:
        for args, target in mounts:
            target.mkdir(exist_ok=True)
            subprocess.run(["mount", *args, str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            if subprocess.run(["umount", str(target)]).returncode != 0:
                subprocess.run(["umount", "-l", str(target)], check=False)


def _chroot(root: Path, script: str, env: dict[str, str], log: Path) -> int:
    base = {"PATH": _PATH, "HOME": "/root", "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    cmd = [
        "chroot",
        str(root),
        "/usr/bin/env",
        "-i",
        *(f"{k}={v}" for k, v in (base | env).items()),
    ]
    with log.open("a") as fh:
        fh.write(f"\n### {script[:200]}\n")
        fh.flush()
        return subprocess.run(
            [*cmd, "/bin/sh", "-e", "-c", script], stdout=fh, stderr=fh
        ).returncode


def _write_metadata(root: Path, recipe: Recipe) -> None:
    meta = root / ".singularity.d"
    (meta / "env").mkdir(parents=True, exist_ok=True)
    sections = recipe.sections
    (meta / "env" / "90-environment.sh").write_text(
        "#!/bin/sh\n# %environment of the recipe\n"
        + "\n".join(sections.get("environment", []))
        + "\n"
    )
    for name, file in (("runscript", "runscript"), ("test", "test")):
        body = sections.get(name, ['exec "$@"'] if name == "runscript" else [])
        path = meta / file
        path.write_text("#!/bin/sh\n" + "\n".join(body) + "\n")
        path.chmod(0o755)
    (meta / "runscript.help").write_text("\n".join(sections.get("help", [])) + "\n")
    env_link = root / "environment"
    if not env_link.is_symlink():
        env_link.symlink_to(".singularity.d/env/90-environment.sh")


def _remove_unmounted(root: Path) -> None:
    """rmtree, but never through a mount that is still there (it could be the host's /dev)."""
    if not root.exists():
        return
    inside = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    left = [m for m in mounts if (m + "/").startswith(inside)]
    if left:
        raise BuildError(f"{root} still has mounts {left}: unmount them, then remove it")
    shutil.rmtree(root, ignore_errors=True)


def tree_digest(root: Path) -> str:
    """sha256 over every entry's path, type, mode and content (file bytes, link target),
    in sorted order; labels.json is left out because it records the result."""
    h = hashlib.sha256()
    skip = root / ".singularity.d" / "labels.json"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath, name)
            if path == skip:
                continue
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with path.open("rb") as fh:
                    while chunk := fh.read(1 << 22):
                        h.update(chunk)
            h.update(b"\0")
    return "sha256:" + h.hexdigest()


def read_labels(image: Path) -> dict[str, str]:
    """The labels of a sandbox image (empty if it has none)."""
    path = image / ".singularity.d" / "labels.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def build_sandbox(
    recipe: Recipe, output: Path, cache: Path = DEFAULT_CACHE, say: Say = print_progress
) -> dict[str, str]:
    """Build `recipe` into the sandbox directory `output`; returns the image's labels (tool
    versions, recipe and rootfs digests). `output` appears only once the build passed %test."""
    _check_can_build(recipe)
    if output.exists():
        raise BuildError(f"{output} exists: remove it or choose another --output")
    started = time.monotonic()
    header = recipe.header
    base = base_rootfs(header.get("OSVersion", "stable"), header["MirrorURL"], cache, say)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = output.with_name(f".{output.name}.building-{os.getpid()}")
    log = output.with_name(f"{output.name}.build.log")
    log.write_text(f"build of {recipe.path}\n")
    shutil.rmtree(work, ignore_errors=True)
    try:
        subprocess.run(["cp", "-a", f"{base}/.", str(work)], check=True)
        (work / ".complete").unlink(missing_ok=True)
        _write_metadata(work, recipe)
        shutil.copyfile("/etc/resolv.conf", work / "etc" / "resolv.conf")
        ca = {}
        if HOST_CA_BUNDLE.is_file():
            shutil.copyfile(HOST_CA_BUNDLE, work / BUILD_CA.lstrip("/"))
            ca = {"PIP_CERT": BUILD_CA, "SSL_CERT_FILE": BUILD_CA, "REQUESTS_CA_BUNDLE": BUILD_CA}
        with _mounted(work):
            say(f"{recipe.family}: %post (log: {log})")
            if _chroot(work, "\n".join(recipe.sections.get("post", [])), ca, log) != 0:
                raise BuildError(f"{recipe.family}: %post failed; see {log}")
            (work / BUILD_CA.lstrip("/")).unlink(missing_ok=True)
            say(f"{recipe.family}: %test")
            test = ". /.singularity.d/env/90-environment.sh\n. /.singularity.d/test"
            if _chroot(work, test, {}, log) != 0:
                raise BuildError(f"{recipe.family}: %test failed; see {log}")
        (work / "etc" / "resolv.conf").write_text("")  # the host's resolver is not the image's
        labels = {
            **recipe.labels,
            RECIPE_LABEL: hashlib.sha256(recipe.path.read_bytes()).hexdigest(),
        }
        labels[DIGEST_LABEL] = tree_digest(work)
        (work / ".singularity.d" / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
        work.rename(output)
    finally:
        _remove_unmounted(work)
    say(f"{recipe.family}: {output} in {time.monotonic() - started:.0f} s, {labels[DIGEST_LABEL]}")
    return labels
