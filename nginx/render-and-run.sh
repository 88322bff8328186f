#!/bin/sh
# Entrypoint of the nginx image: render the platform's one nginx template, then run nginx.
# envsubst is limited to our variables, so nginx's own $variables stay untouched.
# `render-and-run.sh --render-only` prints the rendered file's path and stops (used by the tests).
set -eu

: "${NGINX_LISTEN:=8080}"
: "${GATEWAY_UPSTREAM:=gateway:8000}"
: "${NGINX_PREFIX:=/tmp/nginx}"
: "${NGINX_PID:=${NGINX_PREFIX}/nginx.pid}"
: "${NGINX_USER_DIRECTIVE:=}"
: "${NGINX_ACCESS_LOG:=/dev/stdout}"
: "${NGINX_ERROR_LOG:=/dev/stderr}"
: "${NGINX_DAEMON:=off}"
: "${NGINX_TEMPLATE:=/etc/nginx/platform/nginx.conf.template}"
export NGINX_LISTEN GATEWAY_UPSTREAM NGINX_PREFIX NGINX_PID NGINX_USER_DIRECTIVE \
    NGINX_ACCESS_LOG NGINX_ERROR_LOG NGINX_DAEMON

mkdir -p "${NGINX_PREFIX}/client_body" "${NGINX_PREFIX}/proxy"
config="${NGINX_PREFIX}/nginx.conf"
# shellcheck disable=SC2016 # the single quotes are envsubst's list of variables, on purpose
envsubst '${NGINX_LISTEN} ${GATEWAY_UPSTREAM} ${NGINX_PREFIX} ${NGINX_PID} ${NGINX_USER_DIRECTIVE} ${NGINX_ACCESS_LOG} ${NGINX_ERROR_LOG} ${NGINX_DAEMON}' \
    <"${NGINX_TEMPLATE}" >"${config}"

if [ "${1:-}" = "--render-only" ]; then
    echo "${config}"
    exit 0
fi
exec nginx -e stderr -p "${NGINX_PREFIX}" -c "${config}" "$@"
