# authsvc: the Approov token check for nginx auth_request, ingress auth-url, Traefik forwardAuth.
# Build: docker build -t authsvc .   Run: see compose.yml and deploy/kubernetes/.

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first, from the lock (hashes checked): this layer survives code changes.
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/authsvc \
    && /opt/authsvc/bin/pip install --require-hashes -r requirements.lock \
    && /opt/authsvc/bin/pip install --require-hashes -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY authsvc ./authsvc
# Nothing in the image installs anything: pip and setuptools leave with the build.
RUN /opt/authsvc/bin/pip install --no-deps --no-build-isolation . \
    && /opt/authsvc/bin/python -m pip uninstall --yes setuptools pip

FROM python:3.11.7-slim-bookworm
ENV PATH=/opt/authsvc/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 authsvc \
    && useradd --system --uid 10001 --gid authsvc --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin authsvc
COPY --from=build /opt/authsvc /opt/authsvc
# Read-only root filesystem: the only writes are the Prometheus values, under /tmp
# (mount an emptyDir or tmpfs there).
WORKDIR /tmp
USER 10001:10001
# 8003: Envoy's gRPC ext_authz, when `--grpc-bind 0.0.0.0:8003` (or APPROOV_GRPC_BIND) is given.
EXPOSE 8002 8003
# SIGTERM: readiness turns 503, open requests finish within --graceful-timeout (below the
# orchestrator's grace period), then the process exits.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8002/healthz', timeout=2)"]
ENTRYPOINT ["authsvc"]
CMD ["serve", "--bind", "0.0.0.0:8002", "--graceful-timeout", "20", "--metrics-dir", "/tmp/authsvc-metrics"]
