# One server of the mailswarm reference stack per container (build arg SERVICE: unbound, postfix,
# dovecot, nginx, perdition or roundcube). Packages are installed and configs rendered by the
# same code as `mailswarm stack up` (loadtests/stack); only the addresses differ.
# Build context: the repository root (see compose.yaml). Not exercised on the dev machines.
FROM debian:12-slim

ARG SERVICE
ARG LISTEN=0.0.0.0
ARG BACKEND=172.28.0.10
ARG SMTP_HOST=postfix
ENV SERVICE=${SERVICE} LISTEN=${LISTEN} BACKEND=${BACKEND} SMTP_HOST=${SMTP_HOST} \
    MAILSWARM_STACK_DIR=/srv/mailswarm DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-yaml ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mailswarm
COPY loadtests/__init__.py loadtests/py.typed loadtests/
COPY loadtests/stack loadtests/stack

RUN apt-get update \
 && python3 -m loadtests.stack install "$SERVICE" --no-deps \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m loadtests.stack render "$SERVICE" --listen "$LISTEN" --backend "$BACKEND" \
        --smtp-host "$SMTP_HOST"

# `run` starts the one server in the foreground and stops its process group on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "exec python3 -m loadtests.stack run \"$SERVICE\" --no-deps --no-install --listen \"$LISTEN\" --backend \"$BACKEND\" --smtp-host \"$SMTP_HOST\""]
