# wardgate's TCP gateway: `wardgate serve-tcp` (PostgreSQL and MySQL) as a Fargate task behind a
# Network Load Balancer (template.yaml, TcpGateway* resources). Build with `make image`.
#
# linux/arm64 only: the task definition asks Fargate for Graviton (RuntimePlatform ARM64), and
# every dependency ships arm64 wheels, so the install step needs no compiler.
# tests/test_tcp_image.py replays the install step below (same requirement files, same order)
# in a fresh python3.11 venv and runs the entrypoint's --help: keep the two in step.

# ---------------------------------------------------------------- build: a venv in /opt/wardgate
# hadolint ignore=DL3029
FROM --platform=linux/arm64 python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/wardgate
WORKDIR /src

# Dependencies first: this layer is reused until a requirement file changes.
COPY layers/wardgate/requirements.txt layers/wardgate/requirements-tcp.txt layers/wardgate/
RUN /opt/wardgate/bin/pip install --no-cache-dir \
        -r layers/wardgate/requirements.txt \
        -r layers/wardgate/requirements-tcp.txt

# The package itself, without dependencies: the requirement files above are the whole set.
COPY pyproject.toml README.md ./
COPY layers/wardgate/wardgate layers/wardgate/wardgate
RUN /opt/wardgate/bin/pip install --no-cache-dir --no-deps .

# ---------------------------------------------------------------- runtime
# hadolint ignore=DL3029
FROM --platform=linux/arm64 python:3.11-slim-bookworm

ENV PATH=/opt/wardgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WARDGATE_TCP_HEALTH_PORT=8080

COPY --from=build /opt/wardgate /opt/wardgate
RUN groupadd --gid 10001 wardgate \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin wardgate
USER 10001:10001

# 5432, 3306, 2222 and 6443: the PostgreSQL, MySQL, SSH and Kubernetes (HTTPS) listeners
# (WARDGATE_TCP_LISTENERS; SSH and HTTPS not on 22 and 443, which the non-root user cannot bind);
# 8080: GET /healthz (WARDGATE_TCP_HEALTH_PORT).
EXPOSE 5432 3306 2222 6443 8080

# The slim image has no curl: urllib raises (exit 1) on a refused connection or a non-2xx answer.
# ECS does not read this HEALTHCHECK; the task definition repeats it (template.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('WARDGATE_TCP_HEALTH_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["wardgate", "serve-tcp"]
