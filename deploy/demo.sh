#!/usr/bin/env bash
# The end-to-end demo behind `make run`: the monitor, the event tail and the market
# simulator with a crash, on the local broker, on fresh `demo-*` topics.
#   DEMO_ACCOUNTS (default 2000), DEMO_SECONDS of ticks (default 40), DEMO_RATE ticks/s
#   (default 500), DEMO_PORT for /metrics (default 9464), DEMO_REPLAY=0 to skip the replay.
# Ctrl-C stops all of it; otherwise it stops by itself once the simulation has ended.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
ACCOUNTS=${DEMO_ACCOUNTS:-2000}
SECONDS_OF_TICKS=${DEMO_SECONDS:-40}
RATE=${DEMO_RATE:-500}
PORT=${DEMO_PORT:-9464}
# The example instruments plus an option chain on BTCUSDT expiring from today on and a
# coin-margined BTC-PERPETUAL, written fresh each run (`liqmon simulate
# --write-option-chain`), so the crash also liquidates short-option and inverse accounts.
INSTRUMENTS=.cache/demo-instruments.json
mkdir -p .cache
"$BIN/liqmon" simulate --instruments deploy/instruments.example.json \
  --write-option-chain "$INSTRUMENTS"

export LIQMON_TOPICS__PRICES=demo-prices LIQMON_TOPICS__FILLS=demo-fills
export LIQMON_TOPICS__MARGIN_EVENTS=demo-margin-events LIQMON_TOPICS__STATE=demo-liqmon-state
export LIQMON_TOPICS__DLQ=demo-liqmon-dlq LIQMON_TOPICS__SOLVENCY=demo-liqmon-solvency
export LIQMON_SERVICE__GROUP_ID=liqmon-demo
# An insurance fund to compare bad debt with, and a stress every 2 s (docs/solvency.md).
export LIQMON_SERVICE__INSURANCE_FUND='{"USDT": 1000000}' LIQMON_SOLVENCY__INTERVAL_S=2
export LIQMON_SERVICE__HTTP_PORT=$PORT LIQMON_LOG__FORMAT=${LIQMON_LOG__FORMAT:-console}
export LIQMON_LOG__LEVEL=${LIQMON_LOG__LEVEL:-warning}
# BTC is collateral (priced off BTCUSDT's mark, 5 % haircut): the coin-margined accounts
# of BTC-PERPETUAL hold it and settle in it.
export LIQMON_ENGINE__COLLATERAL='[{"asset": "BTC", "haircut": 0.05, "price_symbol": "BTCUSDT"}]'

echo "== fresh demo topics"
"$BIN/python" - <<'PY'
import asyncio
from monitor.config import load_settings
from streams.topics import delete_topics
settings = load_settings()
asyncio.run(delete_topics(settings.kafka, settings.topics.names()))
PY
"$BIN/liqmon" topics create

pids=()
stop_all() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap 'echo; echo "== stopping"; stop_all; exit 130' INT TERM
trap stop_all EXIT

echo "== monitor: liqmon run (metrics on http://127.0.0.1:$PORT/metrics, /healthz, /readyz)"
"$BIN/liqmon" run --instruments "$INSTRUMENTS" &
pids+=($!)
for _ in $(seq 1 600); do
  if curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "${pids[0]}" 2>/dev/null || { echo "the monitor exited; see above" >&2; exit 1; }
  sleep 0.1
done

echo "== events: liqmon tail (liquidations and bankruptcies shown; margin calls counted below)"
"$BIN/liqmon" tail --type liquidation --type bankruptcy &
pids+=($!)

# The solvency figures just before the crash (at 9 s of the simulation; the crash starts at
# 10 s), to compare with the summary.
solvency() {
  curl -fs "http://127.0.0.1:$PORT/metrics" | awk '
    /^liqmon_(bad_debt_overall|insurance_fund|stress_cover2|adl_shortfall|solvency_reports_total)/ {print}
    /^liqmon_stress_bad_debt\{scenario="all -50%"\}/ {print}
    /^liqmon_bad_debt_overall / {debt += $2} /^liqmon_insurance_fund / {fund += $2}
    END {if (debt > 0) printf "fund coverage of the live bad debt: %.3g\n", fund / debt
         else print "fund coverage of the live bad debt: no bad debt"}'
}
echo "== market: liqmon simulate --scenario crash ($ACCOUNTS accounts, $RATE ticks/s, ${SECONDS_OF_TICKS}s)"
"$BIN/liqmon" simulate --instruments "$INSTRUMENTS" --accounts "$ACCOUNTS" --scenario crash \
  --crash-at 10 --rate "$RATE" --duration "$SECONDS_OF_TICKS" --seed "$(date +%s)" 2>&1 |
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      *" 9.0s "*) echo "== solvency before the crash (from /metrics)"; solvency || true ;;
    esac
  done

# Let the monitor drain what the simulator sent, then summarise from /metrics.
for _ in $(seq 1 100); do
  lag=$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^liqmon_consumer_lag_records/ {s += $2} END {print s + 0}')
  [ "$lag" = "0" ] && break
  sleep 0.1
done
echo "== summary (from http://127.0.0.1:$PORT/metrics)"
curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^liqmon_(events_published_total|accounts|dlq_records_total|records_consumed_total|bad_debt_overall|insurance_fund|stress_bad_debt|stress_cover2|adl_shortfall)' || true
echo "== solvency after the crash"
solvency || true
if [ "${DEMO_REPLAY:-1}" = "1" ]; then
  # The same input through the engine again, cycle for cycle (docs/replay.md): the events
  # must be exactly those published. DEMO_REPLAY=0 skips it.
  echo "== replay: liqmon replay --compare (the recorded input again, against demo-margin-events)"
  "$BIN/liqmon" replay --instruments "$INSTRUMENTS" --compare --quiet || true
fi
echo "== done: Ctrl-C next time to stop early; rerun with DEMO_ACCOUNTS=..., DEMO_SECONDS=..."
