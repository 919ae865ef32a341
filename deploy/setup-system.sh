#!/usr/bin/env bash
# Installs the Debian packages liqmon's make targets need, and only those whose command is
# missing: Java 17+ and Maven (to fetch and run Kafka), kcat (interop tests), prometheus
# (promtool checks the alert rules; the server runs the dashboard queries in a test),
# prometheus-alertmanager (alert routing test), npm (the AsyncAPI parser and compose-spec
# checks), curl (the demo polls /readyz), chromium (a test opens the backtest's HTML report
# headless) and Python's venv module. A machine that has them all returns at once, so `make`
# can call this on every run.
set -euo pipefail

packages=()
command -v java >/dev/null 2>&1 || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)
command -v kcat >/dev/null 2>&1 || packages+=(kcat)
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || packages+=(prometheus-alertmanager)
command -v npm >/dev/null 2>&1 || packages+=(npm)
command -v curl >/dev/null 2>&1 || packages+=(curl)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
"${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)

if [ "${#packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "setup: need root (or sudo) to install: ${packages[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${packages[*]}" >&2
    # Package scripts (prometheus) try to start services; a build machine must not run them.
    policy=/usr/sbin/policy-rc.d
    added_policy=false
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
        "${as_root[@]}" chmod +x "$policy"
        added_policy=true
    fi
    trap '[ "$added_policy" = true ] && "${as_root[@]}" rm -f "$policy"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
if [ "${java_major:-0}" -lt 17 ]; then
    echo "setup: Kafka needs Java 17 or newer; \`java\` is version ${java_major:-unknown}" >&2
    exit 1
fi
