#!/usr/bin/env bash
# The Prometheus rules and the example configuration (label scaling), with
# promtool (Debian package prometheus):
#   1. promtool check rules  deploy/prometheus/brigade-rules.yml
#   2. promtool test rules   deploy/prometheus/brigade-rules.test.yml (at the
#      rules' real `for:` durations)
#   3. promtool check config deploy/prometheus/prometheus.example.yml
#   4. every recording rule has a promql_expr_test, every alert a case where
#      it fires and one where it does not (needs python3 with yaml; skipped
#      with a note without them)
# Exit 0 when all pass, 1 when one fails, 77 (skipped) without promtool.
#
# usage: rules_test.sh [REPO_ROOT]   (default: two folders above this script)
set -u

root=${1:-"$(cd "${BASH_SOURCE[0]%/*}/../.." && pwd)"}
dir="$root/deploy/prometheus"
promtool=${PROMTOOL:-$(command -v promtool || true)}
if [[ -z "$promtool" ]]; then
  echo "skip: promtool not found (apt-get install --no-install-recommends prometheus; deploy/setup.sh does)"
  exit 77
fi

failures=0
step() {  # step WHAT COMMAND...: run it, print ok/FAIL with its output on failure
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    echo "ok: $what"
  else
    echo "FAIL: $what"
    printf '%s\n' "$out" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}

"$promtool" --version 2>&1 | head -n 1
step "promtool check rules brigade-rules.yml" "$promtool" check rules "$dir/brigade-rules.yml"
step "promtool test rules brigade-rules.test.yml" "$promtool" test rules "$dir/brigade-rules.test.yml"
step "promtool check config prometheus.example.yml" "$promtool" check config "$dir/prometheus.example.yml"

coverage() {
  python3 - "$dir/brigade-rules.yml" "$dir/brigade-rules.test.yml" <<'EOF'
import sys
import yaml

rules = [r for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]
tests = yaml.safe_load(open(sys.argv[2]))["tests"]
exprs = {t["expr"].strip() for g in tests for t in g.get("promql_expr_test", [])}
firing, quiet = set(), set()
for g in tests:
    for t in g.get("alert_rule_test", []):
        (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
missing = []
for r in rules:
    if "record" in r and r["record"] not in exprs:
        missing.append(f"recording rule {r['record']} has no promql_expr_test")
    if "alert" in r:
        if r["alert"] not in firing:
            missing.append(f"alert {r['alert']} has no case where it fires")
        if r["alert"] not in quiet:
            missing.append(f"alert {r['alert']} has no case where it does not fire")
print("\n".join(missing) or f"{len(rules)} rules, each covered")
sys.exit(1 if missing else 0)
EOF
}
if command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
  step "every rule has its tests in brigade-rules.test.yml" coverage
else
  echo "note: python3 with yaml not found; the check that every rule has tests is skipped"
fi

if ((failures)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "0 failures"
exit 0
