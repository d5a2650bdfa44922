"""Build the project's container image with podman, without a registry or a daemon, and run what it holds.

These machines reach Debian's packages and PyPI but no image registry, and have no container daemon: the base
is made with ``debootstrap --variant=minbase bookworm`` from the mirror this machine's apt uses and imported
into podman; ``podman build --isolation=chroot`` builds the Dockerfile on it (given as ``--build-arg BASE``, so
nothing is tagged under Debian's own name). pip inside the build gets this machine's CA bundle and index through
a pip.conf mounted for the build only: the Dockerfile stays standard and the image keeps none of it.

``podman run`` fails here (cgroups, rlimits), so :func:`image_root` shows the image's files the way a container
with a read-only root filesystem and a ``/data`` volume would: the image mounted, bound read-only, a host
folder bound on ``/data``, and ``/dev`` and ``/proc`` from the host; ``chroot --userspec`` runs the image's
command as its user there, sharing the host's network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/threadkeeper-test-base:bookworm"
IMAGE = "localhost/threadkeeper-test:latest"
REQUIRE_VARIABLE = "THREADKEEPER_REQUIRE_PODMAN"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def missing_tools() -> list[str]:
    """What the image tests need and this machine lacks (they run as root: chroot and mount need it)."""
    missing = [tool for tool in ("podman", "debootstrap", "chroot", "mount") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses for bookworm (deb822 .sources or one-line lists)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1).rstrip("/")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and not parts[1].startswith("[") and parts[2] == "bookworm":
                return parts[1].rstrip("/")
    return DEFAULT_MIRROR


def host_pip_conf() -> str:
    """A pip.conf for the build: this machine's CA bundle (mounted beside it) and its index, if it sets one."""
    lines = ["[global]", "cert = /run/threadkeeper-build/ca.crt"]
    index = os.environ.get("PIP_INDEX_URL")
    if not index:
        found = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True, text=True
        )
        index = found.stdout.strip() if found.returncode == 0 else ""
    if index:
        lines.append(f"index-url = {index}")
    return "\n".join(lines) + "\n"


def _podman(*args: str, timeout: float = 1200) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name]).returncode == 0


def build_base() -> float:
    """Debian bookworm (minbase) as a podman image, once per machine; the seconds it took (0 if it was there)."""
    if image_exists(BASE_IMAGE):
        return 0.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="threadkeeper-debootstrap-") as folder:
        root = Path(folder) / "root"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(root), debian_mirror()],
            check=True,
            capture_output=True,
            timeout=900,
        )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True)
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"podman import failed: {imported.stderr.decode(errors='replace')}")
    return time.monotonic() - started


@dataclass(frozen=True)
class BuiltImage:
    """The image's name and the parts of its configuration a container runtime would use."""

    name: str
    user: str
    env: dict[str, str]
    workdir: str
    cmd: list[str]
    stop_signal: str
    healthcheck: list[str]
    size_bytes: int
    base_seconds: float
    build_seconds: float


def build_image() -> BuiltImage:
    """The Dockerfile built on the debootstrapped base, for real (apt and pip run inside)."""
    base_seconds = build_base()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="threadkeeper-build-") as folder:
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", Path(folder) / "ca.crt")
        (Path(folder) / "pip.conf").write_text(host_pip_conf())
        _podman(
            "build",
            "--isolation=chroot",
            "--format=docker",
            "--pull=never",
            "--build-arg",
            f"BASE={BASE_IMAGE}",
            "-v",
            f"{folder}:/run/threadkeeper-build:ro",
            "-v",
            f"{folder}/pip.conf:/etc/pip.conf:ro",
            "-t",
            IMAGE,
            str(ROOT),
        )
    build_seconds = time.monotonic() - started
    inspected = json.loads(_podman("image", "inspect", IMAGE))[0]
    config = inspected["Config"]
    return BuiltImage(
        name=IMAGE,
        user=config.get("User", ""),
        env=dict(item.split("=", 1) for item in config.get("Env", [])),
        workdir=config.get("WorkingDir", "/"),
        cmd=list(config.get("Cmd") or []),
        stop_signal=config.get("StopSignal", ""),
        healthcheck=list((inspected.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test") or []),
        size_bytes=int(inspected.get("Size", 0)),
        base_seconds=base_seconds,
        build_seconds=build_seconds,
    )


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextmanager
def image_root(image: str, data: Path) -> Iterator[Path]:
    """The image's files as a container sees them: the root read-only, ``data`` on /data, host /dev and /proc."""
    mounted = Path(_podman("image", "mount", image).strip())
    root = Path(tempfile.mkdtemp(prefix="threadkeeper-root-"))
    try:
        _mount("--bind", str(mounted), str(root))
        _mount("-o", "remount,bind,ro", str(root))
        _mount("--bind", str(data), str(root / "data"))
        _mount("--rbind", "/dev", str(root / "dev"))
        _mount("-t", "proc", "proc", str(root / "proc"))
        yield root
    finally:
        subprocess.run(["umount", "--recursive", "--lazy", str(root)], capture_output=True)
        root.rmdir()
        _podman("image", "unmount", image)


def in_image(root: Path, user: str, workdir: str, command: list[str]) -> list[str]:
    """argv that runs ``command`` in ``root`` as the image's user, from its WORKDIR."""
    return ["chroot", f"--userspec={user}", str(root), "/usr/bin/env", f"--chdir={workdir}", *command]
