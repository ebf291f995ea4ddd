#!/usr/bin/env bash
# loadtest.sh: start certmill-dev on the state make demo left in demo/, run
# the scenario file (default: the short CI profile), stop certmill-dev.
# Each run's summary.md and plot.png go to a folder of its own under OUT
# (default loadtest/out, ignored by git). Exits non-zero when a threshold fails.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIOS=${1:-loadtest/scenarios/ci.yaml}
OUT=${OUT:-loadtest/out}
[ -f demo/ceremony/state.json ] && [ -d demo/certs ] || { echo "loadtest: no demo state; hint: run make demo first" >&2; exit 2; }
export SOFTHSM2_CONF=$PWD/demo/softhsm2.conf
bin/certmill-dev serve -dir demo > demo/loadtest-dev.out 2>&1 &
DEV=$!
trap 'kill $DEV 2>/dev/null || true; wait $DEV 2>/dev/null || true' EXIT
for i in $(seq 1 200); do
	curl -fsS http://127.0.0.1:8443/readyz >/dev/null 2>&1 && curl -fsS http://127.0.0.1:8081/readyz >/dev/null 2>&1 && break
	kill -0 $DEV 2>/dev/null || { cat demo/loadtest-dev.out; echo "loadtest: certmill-dev did not start" >&2; exit 2; }
	sleep 0.1
done
go run ./loadtest -scenarios "$SCENARIOS" -out "$OUT"
