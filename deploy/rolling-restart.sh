#!/bin/sh
# Restart the dialogd replicas of a compose stack ONE AT A TIME, each back to healthy
# before the next, so the others keep serving: `docker compose restart dialogd`
# restarts every replica at once, and nothing answers until they are all up again.
#
#   deploy/rolling-restart.sh             (in the folder of docker-compose.yml)
#   COMPOSE="docker compose -p NAME -f FILE" deploy/rolling-restart.sh
#
# Each replica gets SIGTERM (gunicorn stops listening at once and finishes what it
# holds; nginx sends new requests to the others), then starts, loads the model and
# turns healthy (/status). Then SETTLE seconds pass: a restarted replica may come
# back on a new address, which nginx learns when it next resolves `dialogd` (every
# 10 s, deploy/nginx.conf); only then is the next one taken away.
#
# The replicas restart with the same image and settings (a new model in the
# `models` volume, a changed Redis). A new image or changed settings need the
# containers recreated: see docs/operations.md.
set -eu

SERVICE=${1:-dialogd}
COMPOSE=${COMPOSE:-docker compose}
SETTLE=${SETTLE:-11}
HEALTHY_WITHIN=${HEALTHY_WITHIN:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}  # the service's stop_grace_period

ids=$($COMPOSE ps -q "$SERVICE")
if [ -z "$ids" ]; then
    echo "rolling-restart: no running container of service $SERVICE" >&2
    exit 1
fi
for id in $ids; do
    name=$(docker inspect -f '{{.Name}}' "$id" | sed 's:^/::')
    if [ "$(docker inspect -f '{{if .State.Health}}yes{{end}}' "$id")" != yes ]; then
        echo "rolling-restart: $name has no healthcheck to wait for" >&2
        exit 1
    fi
    started=$(date +%s)
    docker restart -t "$STOP_TIMEOUT" "$id" > /dev/null
    waited=0
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ]; do
        if [ "$waited" -ge "$HEALTHY_WITHIN" ]; then
            echo "rolling-restart: $name not healthy after ${HEALTHY_WITHIN}s; stopped here" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "rolling-restart: $name healthy again after $(( $(date +%s) - started ))s"
    sleep "$SETTLE"
done
