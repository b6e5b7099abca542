"""Dockerfile, compose.yml and the Kubernetes manifests, checked without a Docker engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo import nginx
from tests.conftest import require
from tests.e2e.servers import REPO_ROOT
from tests.support.tokens import DUMMY_SECRET_B64

BIN = Path(sys.executable).parent
KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
SCHEMAS = KUBERNETES / "schemas"
YAML_FILES = sorted(KUBERNETES.glob("*.yaml")) + sorted((KUBERNETES / "examples").glob("*.yaml"))
# Kinds kubernetes-validate has no schema for: checked against the vendored CRD schemas instead.
CUSTOM_RESOURCES = {
    "Kustomization",
    "Middleware",
    "HTTPRoute",
    "ReferenceGrant",
    "SecurityPolicy",
    "ClientTrafficPolicy",
    "AuthorizationPolicy",
    "ExtensionService",
    "HTTPProxy",
}
ISTIOD_VALUES = KUBERNETES / "examples" / "istio-mesh-config.yaml"


def run(*command: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object in deploy/kubernetes (a document with a kind), by file."""
    return [(path, doc) for path in YAML_FILES for doc in documents(path) if "kind" in doc]


def schema_for(resource: dict[str, Any]) -> Path:
    group, _, version = resource["apiVersion"].rpartition("/")
    return SCHEMAS / f"{resource['kind'].lower()}-{group}-{version}.json"


def check_jsonschema(
    schema: Path, document: Any, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    instance = tmp_path / f"instance-{len(list(tmp_path.iterdir()))}.json"
    instance.write_text(json.dumps(document))
    return run(str(BIN / "check-jsonschema"), "--schemafile", str(schema), str(instance))


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_has_no_hadolint_findings() -> None:
    result = run(str(BIN / "hadolint"), "--no-color", "Dockerfile")
    assert (result.returncode, result.stdout) == (0, ""), result.stdout


def test_dockerfile_pins_its_base_installs_from_the_locks_and_runs_as_non_root() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert text.count("FROM python:3.11.7-slim-bookworm") == 2  # multi-stage, pinned
    assert "--require-hashes -r requirements.lock" in text
    assert "USER 10001:10001" in text
    for line in (
        "EXPOSE 8002",
        "STOPSIGNAL SIGTERM",
        "HEALTHCHECK",
        "--graceful-timeout",
        "--metrics-dir",
        "/tmp/authsvc-metrics",  # noqa: S108 - the one place the image writes
    ):
        assert line in text
    assert "curl" not in text


def test_dockerignore_sends_only_the_package_and_its_locks() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*"
    assert {"!authsvc/", "!requirements.lock", "!requirements-build.lock"} <= set(lines)
    assert ".env" not in " ".join(lines)


# --- compose.yml --------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    result = run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yml"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_publishes_only_nginx_and_starts_it_once_the_others_are_healthy() -> None:
    services = load(REPO_ROOT / "compose.yml")["services"]
    assert [name for name, service in services.items() if "ports" in service] == ["nginx"]
    assert services["nginx"]["depends_on"] == {
        "authsvc": {"condition": "service_healthy"},
        "backend": {"condition": "service_healthy"},
    }
    assert "healthcheck" in services["backend"]
    assert services["authsvc"]["build"] == "."  # the Dockerfile's HEALTHCHECK applies
    assert services["authsvc"]["read_only"] is True


def test_compose_secret_comes_from_an_uncommitted_env_file_with_a_committed_example() -> None:
    assert load(REPO_ROOT / "compose.yml")["services"]["authsvc"]["env_file"] == ".env"
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()
    example = (REPO_ROOT / ".env.example").read_text()
    assert f"APPROOV_BASE64_SECRET={DUMMY_SECRET_B64}" in example


def test_compose_mounts_files_that_exist() -> None:
    for service in load(REPO_ROOT / "compose.yml")["services"].values():
        for volume in service.get("volumes", []):
            assert (REPO_ROOT / volume.split(":")[0]).exists(), volume


def test_compose_nginx_files_are_the_shipped_ones_with_the_services_addresses() -> None:
    """Regenerate with `make compose-nginx` when nginx/ changes."""
    for name, text in nginx.compose_files().items():
        assert (nginx.COMPOSE_DIR / name).read_text() == text, name
    example = (nginx.COMPOSE_DIR / "conf.d" / "example.conf").read_text()
    assert "listen 8080;" in example
    assert "127.0.0.1" not in example


# --- Kubernetes ---------------------------------------------------------------------------------


def test_kubernetes_manifests_validate_strictly() -> None:
    manifests = sorted({str(path) for path, _ in resources()})
    result = run(str(BIN / "kubernetes-validate"), "--strict", *manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = result.stdout.count(" passed for resource ")
    assert passed == len([doc for _, doc in resources() if doc["kind"] not in CUSTOM_RESOURCES])


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        (path, doc)
        for path, doc in resources()
        if doc["kind"] in CUSTOM_RESOURCES - {"Kustomization"}
    ],
    ids=lambda value: value.name if isinstance(value, Path) else value["metadata"]["name"],
)
def test_custom_resource_validates_against_its_vendored_crd_schema(
    path: Path, resource: dict[str, Any], tmp_path: Path
) -> None:
    result = check_jsonschema(schema_for(resource), resource, tmp_path)
    assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"


def test_istiod_values_validate_against_the_extension_provider_schema(tmp_path: Path) -> None:
    schema = SCHEMAS / "istiod-values-extension-providers.json"
    result = check_jsonschema(schema, load(ISTIOD_VALUES), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("example", "kind", "misspell"),
    [
        ("envoy-gateway.yaml", "SecurityPolicy", ("spec", "extAuth", "http", "pathPrefix")),
        ("istio.yaml", "AuthorizationPolicy", ("spec", "providers")),
        ("traefik-forwardauth.yaml", "Middleware", ("spec", "forwardAuth", "authResponseHeader")),
        ("envoy-gateway-grpc.yaml", "SecurityPolicy", ("spec", "extAuth", "grpc", "path")),
        ("contour-grpc.yaml", "HTTPProxy", ("spec", "virtualhost", "authorization", "context")),
        ("contour-grpc.yaml", "ExtensionService", ("spec", "timeoutPolicy", "responseTimeout")),
    ],
)
def test_vendored_schemas_refuse_a_misspelt_field(
    example: str, kind: str, misspell: tuple[str, ...], tmp_path: Path
) -> None:
    """Strict like kubectl --validate=strict: the API server would drop the field silently."""
    resource = next(d for d in documents(KUBERNETES / "examples" / example) if d["kind"] == kind)
    *parents, field = misspell
    node = resource
    for name in parents:
        node = node[name]
    node[field] = "/auth"
    assert check_jsonschema(schema_for(resource), resource, tmp_path).returncode == 1


def test_every_example_names_authsvcs_policy_paths_never_the_old_ones() -> None:
    """`/auth/binding-<mode>` is no policy any more (a proxy appending the client's path could
    otherwise pick one): /auth or /auth-binding-<mode>."""
    texts = {path.name: path.read_text() for path in (KUBERNETES / "examples").glob("*.yaml")}
    assert not [name for name, text in texts.items() if "/auth/binding-" in text]
    assert "path: /auth\n" in texts["envoy-gateway.yaml"]
    assert "path: /auth-binding-off" in texts["envoy-gateway.yaml"]
    assert "pathPrefix: /auth\n" in texts["istio-mesh-config.yaml"]


def test_envoy_based_examples_forward_the_device_id_and_hide_the_reason() -> None:
    for policy in (
        d
        for d in documents(KUBERNETES / "examples" / "envoy-gateway.yaml")
        if d["kind"] == "SecurityPolicy"
    ):
        ext_auth = policy["spec"]["extAuth"]
        assert ext_auth["http"]["headersToBackend"] == ["x-approov-did"]
        assert {"approov-token", "authorization"} <= set(ext_auth["headersToExtAuth"])
        assert (ext_auth["failOpen"], ext_auth["statusOnError"]) == (False, 503)
    for provider in load(ISTIOD_VALUES)["meshConfig"]["extensionProviders"]:
        if "envoyExtAuthzGrpc" in provider:  # authsvc's gRPC answer sets the headers itself
            grpc = provider["envoyExtAuthzGrpc"]
            assert (grpc["port"], grpc["failOpen"], grpc["statusOnError"]) == (8003, False, "503")
            continue
        http = provider["envoyExtAuthzHttp"]
        assert http["headersToUpstreamOnAllow"] == ["x-approov-did"]
        assert http["headersToDownstreamOnDeny"] == ["www-authenticate"]
        assert (http["failOpen"], http["statusOnError"]) == (False, "503")


ROUTE_GRAMMAR = re.compile(
    r"/auth(-binding-(required|if-present|off))?(-signing-(required|if-present|off|single-use))?"
    r"(-monitor)?"
)


def _approov_routes(node: Any) -> Iterator[str]:
    """Every `approov-route` value in a document: a context map's key, or Envoy Gateway's list."""
    if isinstance(node, dict):
        if node.get("name") == "approov-route":
            yield node["value"]
        for key, value in node.items():
            if key == "approov-route":
                yield value
            else:
                yield from _approov_routes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _approov_routes(item)


@pytest.mark.parametrize(
    "path",
    [
        REPO_ROOT / "envoy" / "envoy-grpc.yaml",
        KUBERNETES / "examples" / "contour-grpc.yaml",
        KUBERNETES / "examples" / "envoy-gateway-grpc.yaml",
    ],
    ids=lambda path: path.name,
)
def test_grpc_examples_name_a_check_path_of_the_grammar_per_route_at_authsvcs_grpc_port(
    path: Path,
) -> None:
    """A value outside the grammar would deny every check of its route (`route_unknown`)."""
    routes = [route for doc in documents(path) for route in _approov_routes(doc)]
    assert len(routes) >= 4, routes
    assert [route for route in routes if not ROUTE_GRAMMAR.fullmatch(route)] == []
    assert "8003" in path.read_text()


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    resources = load(KUBERNETES / "kustomization.yaml")["resources"]
    assert all((KUBERNETES / name).exists() for name in resources)
    expected = {p.name for p in KUBERNETES.glob("*.yaml")} - {
        "kustomization.yaml",
        "secret.example.yaml",
    }
    assert set(resources) == expected


def test_all_yaml_passes_yamllint() -> None:
    result = run(str(BIN / "yamllint"), "--strict", "compose.yml", "deploy", ".yamllint.yaml")
    assert result.returncode == 0, result.stdout


def test_deployment_is_non_root_read_only_probed_and_bounded() -> None:
    spec = load(KUBERNETES / "deployment.yaml")["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] >= 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"] == "256Mi"
    graceful = int(next(a for a in container["args"] if "graceful" in a).split("=")[1])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > graceful + pre_stop
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["APPROOV_ALLOW_STATUS"] == "200"


def test_ingress_example_sends_token_and_binding_to_the_cache_key_and_forwards_the_did() -> None:
    ingress = documents(KUBERNETES / "examples" / "ingress-nginx.yaml")[0]
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[f"{prefix}auth-url"].startswith("http://authsvc.approov.svc")
    key = annotations[f"{prefix}auth-cache-key"]
    assert "$http_approov_token" in key
    assert "$http_authorization" in key
    assert annotations[f"{prefix}auth-response-headers"] == "X-Approov-Did"


def test_ingress_example_sends_the_host_the_controller_routed_by() -> None:
    """A signed request's URL must name the host the controller routed it by
    (tests/e2e/test_message_signing.py: the absolute-form replay)."""
    docs = documents(KUBERNETES / "examples" / "ingress-nginx.yaml")
    (headers,) = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    assert headers["data"] == {"X-Approov-Routed-Host": "$host"}
    named = f"{headers['metadata']['namespace']}/{headers['metadata']['name']}"
    for ingress in (doc for doc in docs if doc["kind"] == "Ingress"):
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/auth-proxy-set-headers"] == named


def test_traefik_example_forwards_the_token_and_binding_headers() -> None:
    approov = documents(KUBERNETES / "examples" / "traefik-forwardauth.yaml")[0]
    forward = approov["spec"]["forwardAuth"]
    assert {"Approov-Token", "Authorization"} <= set(forward["authRequestHeaders"])
    assert forward["authResponseHeaders"] == ["X-Approov-Did"]


@pytest.mark.parametrize(
    "path",
    [
        REPO_ROOT / "nginx" / "example.conf",
        REPO_ROOT / "envoy" / "envoy.yaml",
        REPO_ROOT / "envoy" / "envoy-grpc.yaml",
        REPO_ROOT / "caddy" / "Caddyfile",
        REPO_ROOT / "haproxy" / "haproxy.cfg",
        *sorted((KUBERNETES / "examples").glob("*.yaml")),
    ],
    ids=lambda path: path.name,
)
def test_every_proxy_file_and_kubernetes_example_shows_a_monitored_route(path: Path) -> None:
    """A rollout starts in monitor mode: each front door shows how (docs/rollout.md): a
    monitored policy path, or (Istio's policies) the provider that has one."""
    assert re.search(r"/auth[a-z-]*-monitor\b|provider:\s+name: authsvc-monitor", path.read_text())


# --- systemd ------------------------------------------------------------------------------------

SYSTEMD_UNIT = REPO_ROOT / "deploy" / "systemd" / "authsvc.service"


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "apt-get install -y systemd")
    assert analyze is not None
    # verify wants ExecStart to exist: point it at this checkout's authsvc.
    unit = tmp_path / "authsvc.service"
    unit.write_text(
        SYSTEMD_UNIT.read_text().replace("/opt/authsvc/bin/authsvc", str(BIN / "authsvc"))
    )
    result = run(analyze, "verify", str(unit))
    assert (result.returncode, result.stderr) == (0, "")


def test_systemd_unit_is_sandboxed_listens_on_loopback_and_reloads_with_hup() -> None:
    directives = [
        line.split("=", 1)
        for line in SYSTEMD_UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    ]
    unit = dict(directives)
    assert "--bind 127.0.0.1:" in unit["ExecStart"]
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["User"] == "authsvc"
    for name, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }.items():
        assert unit[name] == value, name


# What the Approov SDKs send besides the token and signatures (authsvc logs them, and a
# signature may cover the first two): every door with an allowlist must let them through.
SDK_REPORTED = {"approov-status", "approov-traceid", "traceparent"}


def _allowlists(node: Any, keys: frozenset[str]) -> Iterator[list[str]]:
    """Every list under one of `keys`, anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, list):
                yield [str(item) for item in value]
            elif key == "allowed_headers" and isinstance(value, dict):
                yield [pattern["exact"] for pattern in value["patterns"]]
            else:
                yield from _allowlists(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from _allowlists(item, keys)


@pytest.mark.parametrize(
    "path",
    [
        REPO_ROOT / "envoy" / "envoy.yaml",
        *(
            KUBERNETES / "examples" / name
            for name in ("envoy-gateway.yaml", "istio-mesh-config.yaml")
        ),
        KUBERNETES / "examples" / "traefik-forwardauth.yaml",
    ],
    ids=lambda path: path.name,
)
def test_every_allowlist_forwards_the_status_and_trace_ids_the_sdks_send(path: Path) -> None:
    keys = frozenset({"headersToExtAuth", "includeRequestHeadersInCheck", "authRequestHeaders"})
    lists = [names for doc in documents(path) for names in _allowlists(doc, keys)]
    assert lists
    for names in lists:
        assert {name.lower() for name in names} >= SDK_REPORTED, names
