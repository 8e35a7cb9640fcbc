# One server of the mailswarm reference stack per container (build arg SERVICE: unbound, postfix,
# dovecot, nginx, perdition or roundcube). Packages are installed and configs rendered by the
# same code as `mailswarm stack up` (loadtests/stack); only the addresses differ.
# Build context: the repository root (see compose.yaml). Not exercised on the dev machines.
# TLS: the CA and server certificate are made once per compose project by the `pki` service into
# the shared volume `tls` (mounted at /srv/mailswarm/tls); the servers only read and reuse them.
FROM debian:12-slim

ARG SERVICE
ARG LISTEN=0.0.0.0
ARG BACKEND=172.28.0.10
ARG SMTP_HOST=postfix
ENV SERVICE=${SERVICE} LISTEN=${LISTEN} BACKEND=${BACKEND} SMTP_HOST=${SMTP_HOST} \
    MAILSWARM_STACK_DIR=/srv/mailswarm DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1

# Postfix asks Dovecot's auth socket (owned by `postfix`, on the volume `dovecot-run` shared by
# the two containers): the account exists in every image with the same ids, so the socket's
# owner in the dovecot container is the smtpd user in the postfix container.
RUN groupadd --system --gid 500 postfix \
 && useradd --system --uid 500 --gid 500 --home-dir /var/spool/postfix --no-create-home \
        --shell /usr/sbin/nologin postfix

# trustme/cryptography: loadtests/stack/tls.py checks (and at render time makes) the test PKI;
# Debian 12's python3-cryptography is too old for it (not_valid_after_utc needs >= 42).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-yaml python3-pip ca-certificates \
 && pip3 install --no-cache-dir --break-system-packages "trustme>=1.1,<2" \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mailswarm
COPY loadtests/__init__.py loadtests/py.typed loadtests/certs.py loadtests/
COPY loadtests/stack loadtests/stack

RUN apt-get update \
 && python3 -m loadtests.stack install "$SERVICE" --no-deps \
 && rm -rf /var/lib/apt/lists/*
# The PKI made by this build-time render is dropped: no private key in the image, and the
# shared volume `tls` is not seeded from it.
RUN python3 -m loadtests.stack render "$SERVICE" --listen "$LISTEN" --backend "$BACKEND" \
        --smtp-host "$SMTP_HOST" \
 && rm -rf /srv/mailswarm/tls

# `run` starts the one server in the foreground and stops its process group on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "exec python3 -m loadtests.stack run \"$SERVICE\" --no-deps --no-install --listen \"$LISTEN\" --backend \"$BACKEND\" --smtp-host \"$SMTP_HOST\""]
