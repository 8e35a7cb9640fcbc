# The load generator: mailswarm (Locust) as a master or a worker, chosen by the compose command.
# Build context: the repository root. Not exercised on the dev machines.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/mailswarm
COPY pyproject.toml ./
COPY loadtests loadtests
COPY profiles profiles
RUN pip install .

ENTRYPOINT ["mailswarm"]
CMD ["--help"]
