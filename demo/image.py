"""The container image without a Docker engine or a registry: podman builds the Dockerfile as it
is, and runc runs the image as its own configuration (or a Kubernetes manifest) says.

No registry serves the Dockerfile's base (`python:3.11.7-slim-bookworm`) here, so a stand-in is
made once from Debian's package mirror: a bookworm rootfs (mmdebstrap, minbase, Debian's
Python 3.11.2 in /usr/bin) with `python` linked into /usr/local/bin, tagged with the base's name.
pip inside the build reaches the package index through this machine's CA bundle, mounted for
the build only (nothing of it lands in the image). `podman run` cannot set the rlimits it asks
for in this sandbox, so containers run under runc from a bundle made of the mounted image.

`python -m demo.image` (`make image`) builds it and prints its facts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
PODMAN = (
    "podman",
    "--storage-driver",
    "vfs",
    "--cgroup-manager",
    "cgroupfs",
    "--runtime",
    "runc",
    "--events-backend",
    "file",
)
BASE = "docker.io/library/python:3.11.7-slim-bookworm"
STAND_IN_ROOTFS = "localhost/authsvc-base-rootfs:bookworm"
IMAGE = "localhost/authsvc:dev"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
INSTALL_HINT = (
    "podman, runc and mmdebstrap are not installed: `apt-get install podman runc mmdebstrap uidmap`"
)


def available() -> bool:
    return all(shutil.which(tool) for tool in ("podman", "runc", "mmdebstrap"))


def podman(*arguments: str, output: IO[str] | None = None) -> str:
    result = subprocess.run(
        [*PODMAN, *arguments],
        check=True,
        text=True,
        stdout=output if output is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT if output is not None else None,
    )
    return result.stdout or ""


def has_image(name: str) -> bool:
    return subprocess.run([*PODMAN, "image", "exists", name], check=False).returncode == 0


def ensure_base(log: IO[str]) -> None:
    """The stand-in for the Dockerfile's base, made once."""
    if has_image(BASE):
        return
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
            ],
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        podman("import", str(rootfs), STAND_IN_ROOTFS, output=log)
        (Path(scratch) / "Containerfile").write_text(
            f"FROM {STAND_IN_ROOTFS}\nRUN ln -s /usr/bin/python3 /usr/local/bin/python\n"
        )
        podman("build", "--network", "host", "--tag", BASE, scratch, output=log)


def build(log: IO[str]) -> None:
    """The Dockerfile, unchanged, into IMAGE (layers cached by podman)."""
    ensure_base(log)
    with tempfile.TemporaryDirectory() as scratch:
        pip_conf = Path(scratch) / "pip.conf"
        pip_conf.write_text(f"[global]\ncert = {CA_BUNDLE}\n")
        podman(
            "build",
            "--format",  # docker: the OCI format has no HEALTHCHECK
            "docker",
            "--network",
            "host",
            "--volume",
            f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
            "--volume",
            f"{pip_conf}:/etc/pip.conf:ro",
            "--tag",
            IMAGE,
            str(REPO),
            output=log,
        )


@dataclass(frozen=True)
class ImageFacts:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: tuple[int, int]
    workdir: str
    env: tuple[str, ...]
    healthcheck: tuple[str, ...]
    """The HEALTHCHECK's command (its CMD form, without "CMD")."""
    size_mb: float


def facts(name: str = IMAGE) -> ImageFacts:
    inspected: dict[str, Any] = json.loads(podman("image", "inspect", name))[0]
    config = inspected["Config"]
    uid, _, gid = (config.get("User") or "0").partition(":")  # no USER: root
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck") or {}
    test = healthcheck.get("Test", [])
    return ImageFacts(
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
        user=(int(uid), int(gid or uid)),
        workdir=config.get("WorkingDir") or "/",
        env=tuple(config.get("Env") or ()),
        healthcheck=tuple(test[1:] if test[:1] == ["CMD"] else test),
        size_mb=inspected["Size"] / 1e6,
    )


@contextmanager
def mounted(name: str = IMAGE) -> Iterator[Path]:
    """The image's root filesystem (podman's own copy: runc mounts it read-only)."""
    root = Path(podman("image", "mount", name).strip())
    try:
        yield root
    finally:
        podman("image", "unmount", name)


@dataclass(frozen=True)
class Run:
    """What a container runtime is told: the process, and the filesystem around it."""

    args: Sequence[str]
    user: tuple[int, int]
    cwd: str
    env: Sequence[str]
    capabilities: Sequence[str] | None = None
    """None: runc's defaults; [] drops them all (Kubernetes `drop: [ALL]`)."""
    files: Mapping[str, Path] | None = None
    """Files mounted read-only, by their path in the container (a Kubernetes Secret)."""


class Container:
    """One container under runc from a bundle: the image's root read-only, a tmpfs on /tmp,
    the host's network, no rlimits (the sandbox here refuses them)."""

    def __init__(self, root: Path, run: Run, directory: Path) -> None:
        self.name = f"authsvc-test-{time.monotonic_ns()}"
        self.bundle = directory / self.name
        self.bundle.mkdir(parents=True)
        subprocess.run(["runc", "spec"], cwd=self.bundle, check=True)
        spec = json.loads((self.bundle / "config.json").read_text())
        spec["root"] = {"path": str(root), "readonly": True}
        process = spec["process"]
        process.update(
            terminal=False,
            args=list(run.args),
            user={"uid": run.user[0], "gid": run.user[1]},
            cwd=run.cwd,
            env=list(run.env),
            noNewPrivileges=True,
        )
        process.pop("rlimits", None)
        if run.capabilities is not None:
            process["capabilities"] = {
                kind: list(run.capabilities) for kind in process["capabilities"]
            }
        spec["mounts"].append(
            {
                "destination": "/tmp",  # noqa: S108 (the image's one writable path, a tmpfs)
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"],
            }
        )
        for inside, outside in (run.files or {}).items():
            spec["mounts"].append(
                {
                    "destination": inside,
                    "type": "bind",
                    "source": str(outside),
                    "options": ["bind", "ro"],
                }
            )
        spec["linux"]["namespaces"] = [
            namespace for namespace in spec["linux"]["namespaces"] if namespace["type"] != "network"
        ]
        (self.bundle / "config.json").write_text(json.dumps(spec))
        self.stdout = self.bundle / "stdout.log"
        self.stderr = self.bundle / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Container:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                ["runc", "run", "--bundle", str(self.bundle), self.name], stdout=out, stderr=err
            )
        return self

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runc", "exec", self.name, *command], capture_output=True, text=True, check=False
        )

    def pid(self) -> int:
        state = subprocess.run(
            ["runc", "state", self.name], capture_output=True, text=True, check=True
        )
        pid: int = json.loads(state.stdout)["pid"]
        return pid

    def signal(self, name: str) -> None:
        subprocess.run(["runc", "kill", self.name, name], check=True)

    def wait(self, timeout: float) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.wait(timeout=timeout)

    def remove(self) -> None:
        """Stop it if it still runs, and forget it."""
        if self.process is not None and self.process.poll() is None:
            subprocess.run(["runc", "kill", self.name, "KILL"], check=False)
            self.process.wait(timeout=10)
        subprocess.run(["runc", "delete", "--force", self.name], check=False, capture_output=True)


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        try:
            build(log)
        except subprocess.CalledProcessError:
            log.seek(0)
            print(log.read()[-4000:])
            raise
    image, base = facts(), facts(BASE)
    print(
        f"built {IMAGE} from the Dockerfile in {time.monotonic() - started:.0f} s:"
        f" {image.size_mb:.0f} MB ({base.size_mb:.0f} MB of it the stand-in base),"
        f" user {image.user[0]}:{image.user[1]}, entrypoint {list(image.entrypoint)}"
    )


if __name__ == "__main__":
    main()
