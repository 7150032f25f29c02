#!/usr/bin/env bash
# Every call of the specification, through the REST API, against a running `make run`.
# The README shows these commands with the responses they gave. CI runs this script too.
#   bash docs/walkthrough.sh            # BASE=http://127.0.0.1:8000 by default
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-http://127.0.0.1:8000}
PY=${PY:-.venv/bin/python}
# The API token `make run` printed on its first start (also in var/admin-credentials.txt).
TOKEN=${TOKEN:-$(sed -n 's/^api token: //p' var/admin-credentials.txt)}
AUTH="Authorization: Token $TOKEN"
JSON="Content-Type: application/json"
field() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
show() { "$PY" -m json.tool; }
step() { printf '\n### %s\n' "$*"; }

step "workflow_create: the specification's first workflow (make run already loaded it as alpaca-trading-workflow; this is a copy)"
NAME=${NAME:-my-trading-workflow-$RANDOM}
curl -sf -X POST "$BASE/api/v1/workflows/" -H "$AUTH" -H "$JSON" -d '{
  "name": "'"$NAME"'",
  "description": "Automated trading workflow with news analysis",
  "steps": [
    {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"]}},
    {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
    {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.7}},
    {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}}
  ],
  "triggers": [{"type": "schedule", "cron": "0 9 * * 1-5"}]
}' | tee /tmp/nexus-created.json | show
WF=$(field '["workflow_id"]' < /tmp/nexus-created.json)

step "workflow_execute with test data, async=false (waits for the final status)"
curl -sf -X POST "$BASE/api/v1/workflows/$WF/execute/" -H "$AUTH" -H "$JSON" \
  -d '{"input_data": {"symbols": ["AAPL"], "test_mode": true}, "async": false}' | tee /tmp/nexus-run.json | show
EX=$(field '["execution_id"]' < /tmp/nexus-run.json)

step "workflow_audit_trail of that execution"
curl -sf "$BASE/api/v1/executions/$EX/audit/" -H "$AUTH" | show

step "workflow_status of the workflow: its triggers with next_run_at / last_fired_at"
curl -sf "$BASE/api/v1/workflows/$WF/status/" -H "$AUTH" | show

step "workflow_metrics (measured over the last 24 h)"
curl -sf "$BASE/api/v1/workflows/$WF/metrics/?window=24h" -H "$AUTH" | show

step "queue configuration: the specification's hft-queue"
curl -s -X POST "$BASE/api/v1/queues/" -H "$AUTH" -H "$JSON" -d '{
  "name": "hft-queue", "max_retries": 3, "visibility_timeout": 30, "message_retention": 86400,
  "batch_size": 10, "ordering": "FIFO", "deduplication": true}' | show

step "queue_send: a trade signal to trading-signals"
curl -sf -X POST "$BASE/api/v1/queues/trading-signals/messages/" -H "$AUTH" -H "$JSON" \
  -d '{"message": {"type": "trade_signal", "symbol": "AAPL", "signal": "BUY"}, "group_id": "AAPL"}' | show

step "workflow_queue_status with messages"
curl -sf "$BASE/api/v1/queues/?include_messages=true" -H "$AUTH" | show

step "workflow_queue_status of the dead-letter-queue"
curl -sf "$BASE/api/v1/queues/dead-letter-queue/" -H "$AUTH" | show

step "dead letters, then the per-error-class policies (rate_limit retry, invalid_symbol discard, else alert)"
curl -sf "$BASE/api/v1/dead-letters/?limit=5" -H "$AUTH" | show
curl -sf -X POST "$BASE/api/v1/dead-letters/process/" -H "$AUTH" -H "$JSON" -d '{}' | show

step "workflow_update: adapt to high volatility (threshold 0.9, risk 0.01), then back (0.7, 0.02)"
curl -sf -X POST "$BASE/api/v1/workflows/$WF/update/" -H "$AUTH" -H "$JSON" \
  -d '{"updates": {"steps[2].params.threshold": 0.9, "steps[3].params.risk_limit": 0.01}}' | show
curl -sf -X POST "$BASE/api/v1/workflows/$WF/update/" -H "$AUTH" -H "$JSON" \
  -d '{"updates": {"steps[generate_signals].params.threshold": 0.7, "steps[execute_trades].params.risk_limit": 0.02}}' | show

step "workflow_agent_assign: route execute_trades to an execution agent's queue"
curl -sf -X POST "$BASE/api/v1/workflows/$WF/agents/" -H "$AUTH" -H "$JSON" \
  -d '{"task_id": "execute_trades", "agent_type": "execution", "use_vector_similarity": false}' | show

step "the production patterns loaded by make run: circuit breaker, saga, composition"
for name in protected-trader trading-saga master-trader; do
  curl -sf -X POST "$BASE/api/v1/workflows/$name/execute/" -H "$AUTH" -H "$JSON" \
    -d '{"input_data": {"symbols": ["AAPL"], "test_mode": true}, "async": false}' \
    | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(d['workflow_name'], d['status'], d['completed_steps'])"
done

step "a signed webhook event (HMAC-SHA256 over timestamp + body, source 'local')"
SECRET=$(cat var/webhook-secret)
BODY='{"kind": "webhook", "name": "tradingview-alert", "symbol": "AAPL", "priority": "high"}'
TS=$(date +%s)
SIG=$(printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
curl -sf -X POST "$BASE/api/v1/events/" -H "$JSON" -H "X-Nexus-Source: local" \
  -H "X-Nexus-Timestamp: $TS" -H "X-Nexus-Signature: $SIG" -d "$BODY" | show
echo "the same request again is a replay:"
curl -s -X POST "$BASE/api/v1/events/" -H "$JSON" -H "X-Nexus-Source: local" \
  -H "X-Nexus-Timestamp: $TS" -H "X-Nexus-Signature: $SIG" -d "$BODY" | show

step "workflow_list"
curl -sf "$BASE/api/v1/workflows/?limit=3" -H "$AUTH" | show
echo; echo "walkthrough: every call answered"
