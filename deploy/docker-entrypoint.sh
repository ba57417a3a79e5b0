#!/bin/sh
# The image's entrypoint: `dialogd "$@"`, so `docker run IMAGE train ...` and
# `docker run IMAGE serve ...` are the dialogd command line.
#
# For `serve`, these variables become flags (docs/operations.md):
#   DIALOGD_PORT        --port         DIALOGD_KEY_PREFIX  --key-prefix
#   DIALOGD_REDIS_URL   --redis-url    DIALOGD_TTL         --ttl
#   DIALOGD_DATA_DIR    --data-dir     DIALOGD_MAX_BODY    --max-body
#   DIALOGD_WORKERS     --workers
# They are put BEFORE the command line's own flags, so a flag given on the command
# line wins (argparse keeps the last value). An empty or unset variable adds nothing.
# The other gunicorn knobs (DIALOGD_THREADS, DIALOGD_TIMEOUT, ...) are read by
# `dialogd serve` itself (api/serving/settings.py), which also picks the number of
# workers from the CPUs when DIALOGD_WORKERS is unset.
set -eu

if [ "${1:-}" = "serve" ]; then
    shift
    for pair in \
        WORKERS:--workers \
        MAX_BODY:--max-body \
        TTL:--ttl \
        KEY_PREFIX:--key-prefix \
        DATA_DIR:--data-dir \
        REDIS_URL:--redis-url \
        PORT:--port; do
        value=$(printenv "DIALOGD_${pair%%:*}" || true)
        if [ -n "$value" ]; then
            # --flag=value, so a value that starts with "-" is not taken for a flag.
            set -- "${pair#*:}=$value" "$@"
        fi
    done
    set -- serve "$@"
fi

exec dialogd "$@"
