#!/usr/bin/env bash
# Judges tickerlab's WebSocket frame layer with the Autobahn|Testsuite, the conformance
# suite every WebSocket library is checked against (framing, ping/pong, reserved bits,
# opcodes, fragmentation, UTF-8, close handling, limits).
#
#   scripts/autobahn.sh            # installs the suite once per machine, runs it
#   AUTOBAHN_PROFILE=release scripts/autobahn.sh   # judges a release build instead of the
#                                                 # debug one `cargo test` already made
#
# The suite is installed once per machine (not per clone or per run) under
# ${XDG_CACHE_HOME:-~/.cache}/tickerlab/autobahn (AUTOBAHN_HOME to move it).
#
# It starts tickerlab on 127.0.0.1 (a free port), points `wstest -m
# fuzzingclient` at GET /echo (served by the same frame guard, limits and writer as /ws),
# runs cases 1-7 and 9-10, prints a table of case group x verdict, and exits 1 if any case's
# verdict is not OK, NON-STRICT or INFORMATIONAL. The full HTML report is left in
# target/autobahn/reports/index.html.
#
# The suite runs on Python 2.7 only. Without one (PYTHON27, or python2.7 on PATH, or the
# pyenv 2.7.18), the script says so and exits 0: CI without Python 2.7 is not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python27() {
    for candidate in "${PYTHON27:-}" python2.7 "$HOME/.pyenv/versions/2.7.18/bin/python" \
        /root/.pyenv/versions/2.7.18/bin/python; do
        [ -n "$candidate" ] || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
}
PY27=$(find_python27 || true)
if [ -z "$PY27" ]; then
    echo "autobahn.sh: no Python 2.7 here (set PYTHON27=/path/to/python2.7)."
    echo "autobahn.sh: the Autobahn suite was NOT run; nothing was judged."
    exit 0
fi

WORK="$PWD/target/autobahn"
HOME_DIR=${AUTOBAHN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tickerlab/autobahn}
VENV=$HOME_DIR/venv
if [ ! -x "$VENV/bin/wstest" ]; then
    echo "autobahn.sh: installing autobahntestsuite from PyPI into $VENV (Python 2.7: $PY27)"
    rm -rf "$HOME_DIR"
    # virtualenv 20.21 is the last release that creates Python 2.7 environments; it is
    # installed beside the venv, not into the machine's Python.
    "$PY27" -m pip install -q --disable-pip-version-check --target "$HOME_DIR/tools" 'virtualenv<20.22'
    PYTHONPATH="$HOME_DIR/tools" "$PY27" -m virtualenv -q "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check autobahntestsuite
fi

# The frame layer's conformance does not depend on optimisation, so by default the suite
# judges the debug build `cargo test` has already made (a release build of everything
# would cost CI minutes); AUTOBAHN_PROFILE=release judges the release build.
PROFILE=${AUTOBAHN_PROFILE:-debug}
if [ "$PROFILE" = release ]; then
    cargo build --release --quiet --bin tickerlab
else
    cargo build --quiet --bin tickerlab
fi

# The suite sends messages of up to 16 MiB and thousands of frames per second (cases 9.x,
# 10.x, 1.1.6-8). tickerlab's defaults (--max-message-bytes 4096, --max-messages-per-sec 20)
# are deliberate limits for a ticker, and a conforming server *may* refuse such messages
# (1009) or floods (1008); the suite would call that FAILED. So the limits are raised for this
# run, and the same code paths enforce them: the suite then judges the framing itself.
# tests/it/hostile/ws.rs checks the limits at their defaults.
#
# The heartbeat is slowed too (first ping after at least 6 s, later than any case of the
# suite that sends a frame in chops lasts). A server may ping at any time, but the suite's
# client answers a ping at once, even in the middle of a frame it is sending in chops (cases
# 6.4.x): its pong then lands inside that frame's payload, and the server rightly closes with
# 1002, which the suite calls FAILED. With the default 5 s heartbeat, whose first ping falls
# anywhere from 0.5 s on, case 6.4.3 failed so.
LOG=$WORK/tickerlab.log
mkdir -p "$WORK"
"target/$PROFILE/tickerlab" --host 127.0.0.1 --port 0 \
    --max-message-bytes 16777216 --max-messages-per-sec 1000000 \
    --heartbeat-secs 60 --client-timeout-secs 120 >"$WORK/tickerlab.out" 2>"$LOG" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
ADDR=
for _ in $(seq 100); do
    ADDR=$(sed -n 's#^tickerlab listening on http://##p' "$WORK/tickerlab.out" | head -1)
    [ -n "$ADDR" ] && break
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "autobahn.sh: tickerlab did not start:"; cat "$LOG"; exit 1; }

# Cases left out on purpose, with the reason. None today: with the limits above, every case
# of groups 1-7, 9 and 10 runs. (Groups 12 and 13 need permessage-deflate, which tickerlab
# does not negotiate; they are not part of this run.)
EXCLUDE='[]'

cat >"$WORK/fuzzingclient.json" <<EOF
{
  "outdir": "$WORK/reports",
  "servers": [{"agent": "tickerlab", "url": "ws://$ADDR/echo"}],
  "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"],
  "exclude-cases": $EXCLUDE,
  "exclude-agent-cases": {}
}
EOF
rm -rf "$WORK/reports"
(cd "$WORK" && "$VENV/bin/wstest" -m fuzzingclient -s fuzzingclient.json >wstest.log 2>&1) || {
    echo "autobahn.sh: wstest failed:"; tail -20 "$WORK/wstest.log"; exit 1; }

"$PY27" - "$WORK/reports/index.json" <<'EOF'
import json, sys
from collections import defaultdict
results = json.load(open(sys.argv[1]))["tickerlab"]
ACCEPTED = ("OK", "NON-STRICT", "INFORMATIONAL")
table = defaultdict(lambda: defaultdict(int))
verdicts = set()
bad = []
for case, result in results.items():
    verdict = result["behavior"]
    table[int(case.split(".")[0])][verdict] += 1
    verdicts.add(verdict)
    if verdict not in ACCEPTED:
        bad.append((case, verdict, result.get("behaviorClose")))
columns = sorted(verdicts, key=lambda v: (v not in ACCEPTED, v))
print("| group | " + " | ".join(columns) + " |")
print("|---|" + "---|" * len(columns))
for group in sorted(table):
    print("| %d | %s |" % (group, " | ".join(str(table[group][v]) for v in columns)))
print("%d cases" % len(results))
if bad:
    for case, verdict, close in sorted(bad, key=lambda b: [int(n) for n in b[0].split(".")]):
        print("NOT ACCEPTED: case %s: %s (close: %s)" % (case, verdict, close))
    sys.exit(1)
print("every verdict is OK, NON-STRICT or INFORMATIONAL")
EOF
