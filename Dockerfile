# Scoreline: one image for every role (api, worker, boards, sinks, producers) and for `init`.
#   docker build -t scoreline:local .
#   docker run --rm scoreline:local            # scoreline --help
#   docker run --rm scoreline:local worker     # any sub-command
# Used by docker-compose.kafka.yml; see docs/real-kafka.md.

# -- build: install the project (no dev extras) into a venv ----------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A compiler, for any dependency without a wheel on this platform (e.g. on arm64).
# It stays in this stage; the runtime image gets only the venv.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# .dockerignore keeps out .venv, .scoreline, caches, tests and .git.
COPY . .
RUN pip install --upgrade pip \
    && pip install .

# -- runtime ---------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN useradd --create-home --uid 10001 --user-group scoreline

COPY --from=build /opt/venv /opt/venv

USER scoreline
# Writable by the user: the relative SCORELINE_HOME (.scoreline) lands here.
WORKDIR /home/scoreline

# 8000: `scoreline api` (API_PORT); 9100: /metrics of the other roles (SCORELINE_METRICS_PORT).
EXPOSE 8000 9100

ENTRYPOINT ["scoreline"]
CMD ["--help"]
