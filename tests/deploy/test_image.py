"""The container image, built from the Dockerfile as it is (podman) and run (runc) as its own
configuration says, and as the Kubernetes Deployment's container says: what a user of the image
gets, checked from outside. Everything is read from the image's config and the manifest, not
copied here. See demo/image.py for the stand-in base (no registry serves the real one here)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo import image
from tests.conftest import require
from tests.e2e.servers import send
from tests.support.tokens import DUMMY_SECRET_B64, bound_token, token
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

DEPLOYMENT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "deployment.yaml"
AUTHORIZATION = "Bearer image-user"
START_SECONDS = 30


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[image.ImageFacts, Path]]:
    """The image, and its root filesystem mounted for runc."""
    require(image.available(), image.INSTALL_HINT)
    log_path = tmp_path_factory.mktemp("image") / "build.log"
    with log_path.open("w+") as log:
        try:
            image.build(log)
        except Exception:
            log.seek(0)
            pytest.fail(f"the image did not build:\n{log.read()[-4000:]}")
    with image.mounted() as root:
        yield image.facts(), root


def port_of(args: list[str] | tuple[str, ...]) -> int:
    """The port `authsvc serve --bind HOST:PORT` (or `--bind=HOST:PORT`) listens on."""
    joined = " ".join(args).replace("--bind=", "--bind ")
    return int(joined.split("--bind ", 1)[1].split()[0].rsplit(":", 1)[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    return send(port, "GET", path, headers).status


def answering(port: int) -> bool:
    try:
        return get(port, "/readyz") == 200
    except OSError:
        return False


@pytest.fixture
def run_container(built: tuple[image.ImageFacts, Path], tmp_path: Path) -> Iterator[Any]:
    """Start a container of the image with a `Run`; every one started is removed after."""
    _, root = built
    started: list[image.Container] = []

    def start(run: image.Run, ready_port: int | None = None) -> image.Container:
        if ready_port is not None:
            require(
                port_is_free(ready_port), f"port {ready_port} is taken: the image listens there"
            )
        container = image.Container(root, run, tmp_path).start()
        started.append(container)
        if ready_port is not None:
            wait_until(lambda: answering(ready_port), START_SECONDS, "the container's /readyz")
        return container

    yield start
    for container in started:
        container.remove()


def as_configured(facts: image.ImageFacts, *env: str) -> image.Run:
    """The image's own ENTRYPOINT, CMD, USER, WORKDIR and ENV, with `env` added."""
    return image.Run(
        args=[*facts.entrypoint, *facts.cmd],
        user=facts.user,
        cwd=facts.workdir,
        env=[*facts.env, *env],
    )


@pytest.fixture
def serving(
    built: tuple[image.ImageFacts, Path], run_container: Any
) -> tuple[image.ImageFacts, int, image.Container]:
    """The image as configured, given the dummy secret, answering on the port its CMD binds."""
    facts, _ = built
    port = port_of(facts.cmd)
    secret = f"APPROOV_BASE64_SECRET={DUMMY_SECRET_B64}"
    return facts, port, run_container(as_configured(facts, secret), ready_port=port)


def test_the_image_as_configured_serves_as_its_non_root_user_on_a_read_only_root(
    serving: tuple[image.ImageFacts, int, image.Container],
) -> None:
    facts, port, container = serving
    valid = {"Approov-Token": bound_token(AUTHORIZATION.encode()), "Authorization": AUTHORIZATION}
    assert get(port, "/auth", valid) == 204
    assert get(port, "/auth", {**valid, "Approov-Token": valid["Approov-Token"][:-2]}) == 401
    # A client-chosen path after the policy never weakens it: a token without `pay`.
    assert get(port, "/auth/binding-off", {"Approov-Token": token()}) == 401
    status = Path(f"/proc/{container.pid()}/status").read_text()
    assert f"Uid:\t{facts.user[0]}\t" in status
    assert facts.user[0] != 0
    assert "Read-only file system" in container.exec("sh", "-c", "touch /opt/written").stderr
    assert container.exec("sh", "-c", "touch /tmp/written").returncode == 0
    # Nothing to install or compile with: no pip, no compiler.
    assert container.exec("python", "-m", "pip", "--version").returncode != 0
    assert container.exec("sh", "-c", "command -v gcc cc c++").stdout == ""
    assert facts.healthcheck, "the image has no HEALTHCHECK (built without --format docker?)"
    healthcheck = container.exec(*facts.healthcheck)
    assert healthcheck.returncode == 0, healthcheck.stderr


def test_sigterm_stops_it_within_the_graceful_timeout_with_exit_0_and_every_decision_written(
    serving: tuple[image.ImageFacts, int, image.Container],
) -> None:
    facts, port, container = serving
    marker = "last-before-sigterm"
    assert get(port, "/auth", {"X-Request-ID": marker}) == 401
    graceful = int(" ".join(facts.cmd).split("--graceful-timeout ", 1)[1].split()[0])
    started = time.monotonic()
    container.signal("TERM")
    assert container.wait(timeout=graceful + 5) == 0
    assert time.monotonic() - started < graceful
    assert f'"request_id": "{marker}"' in container.stdout.read_text()


def test_without_a_secret_it_refuses_to_start_and_says_why_on_stderr(
    built: tuple[image.ImageFacts, Path], run_container: Any
) -> None:
    facts, _ = built
    container = run_container(as_configured(facts))
    assert container.wait(timeout=START_SECONDS) != 0
    assert "APPROOV_BASE64_SECRET" in container.stderr.read_text()


def deployment_container() -> tuple[dict[str, Any], dict[str, Any]]:
    pod = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def test_the_kubernetes_manifest_runs_the_image_its_user_read_only_probes_answering(
    built: tuple[image.ImageFacts, Path], run_container: Any, tmp_path: Path
) -> None:
    """The Deployment's container as Kubernetes would run it: its args and env, the Secret as a
    file, its securityContext (user, read-only root, no capabilities, no privilege escalation)
    and the emptyDir on /tmp; then its probes, and a check."""
    facts, _ = built
    pod, container = deployment_container()
    pod_security, security = pod["securityContext"], container["securityContext"]
    user = (pod_security["runAsUser"], pod_security["runAsGroup"])
    assert user == facts.user, "the manifest runs the image as another user than its own"
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}  # noqa: S108
    env = {item["name"]: item["value"] for item in container["env"]}
    secret = tmp_path / "secret"
    secret.write_text(DUMMY_SECRET_B64 + "\n")
    run = image.Run(
        args=[*facts.entrypoint, *container["args"]],
        user=user,
        cwd=facts.workdir,
        env=[*facts.env, *(f"{name}={value}" for name, value in env.items())],
        capabilities=[] if security["capabilities"]["drop"] == ["ALL"] else None,
        files={env["APPROOV_BASE64_SECRET_FILE"]: secret},
    )
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    port = port_of(container["args"])
    run_container(run, ready_port=port)
    for probe in ("readinessProbe", "livenessProbe"):
        http_get = container[probe]["httpGet"]
        probe_port = ports.get(http_get["port"], http_get["port"])
        assert get(probe_port, http_get["path"]) == 200, probe
    valid = {"Approov-Token": bound_token(AUTHORIZATION.encode()), "Authorization": AUTHORIZATION}
    assert get(port, "/auth", valid) == int(env["APPROOV_ALLOW_STATUS"])
