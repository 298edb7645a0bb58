# syntax=docker/dockerfile:1
# placement-operator image: the package installed as a wheel into a virtualenv in a build
# stage, and only that virtualenv copied onto a clean slim Python. No compilers, no pip cache,
# no source tree in the final image.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator/ operator/
COPY hack/install-wheel.sh hack/
RUN sh hack/install-wheel.sh /opt/venv

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="placement-operator" \
      org.opencontainers.image.description="Moves inference work between realtime Deployments and batch Jobs when it pays" \
      org.opencontainers.image.source="https://github.com/runplacement/placement-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# USER: the numeric user has no /etc/passwd entry, and kopf names its peering identity after
# the login name (getpass.getuser() reads $USER first; without it the operator cannot start).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    USER=placement
COPY --from=build /opt/venv /opt/venv
# A numeric user, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
# 8080: kopf's liveness endpoint (/healthz); 8081: the operator's /metrics.
EXPOSE 8080 8081
ENTRYPOINT ["placement", "run"]
