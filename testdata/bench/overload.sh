#!/usr/bin/env bash
# What the switch completes when it is offered more calls than it takes:
# one step at RATE calls/s with the overload control on (the default
# security.overload_wait_ms) and one with it off (0), one after the other.
# The caller is uac_overload.xml (uac_trunk.xml's call, taking a 503 as
# the answer it is), the callee SIPp's uas, as in profile.sh.
#
#   ./testdata/bench/overload.sh bin/parkswitch [OUT_DIR]
#
# Env: RATE [5000] calls/s offered for SECS [30] s; ORDER ["on off"].
# For each side it prints the calls answered (200) and refused with 503
# (shed, or for want of media ports: the switch's log tells), the calls
# failed (no final answer: SIPp gave up), SIPp's retransmissions,
# how long SIPp took to get through the step, the answered calls per
# second over that time, and the share of answered INVITEs SIPp saw
# answered within 200 ms.
# Ports: 127.0.0.1:5060 (switch), 127.0.0.2:5060 (caller), 127.0.0.3:5070
# (callee), 127.0.0.1:18081 (http); RTP 20000-39999.
set -u -o pipefail
[ $# -ge 1 ] && [ -x "$1" ] || { echo "usage: $0 PATH/TO/parkswitch [OUT_DIR]" >&2; exit 2; }
command -v sipp >/dev/null || { echo "overload: sipp not found (make deps-test)" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/switch.sh"
OUT=${2:-$(mktemp -d)}
RATE=${RATE:-5000}
SECS=${SECS:-30}
ORDER=${ORDER:-on off}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

step() { # side: on | off
	local side=$1 dir="$OUT/$1" security=""
	[ "$side" = off ] && security=$'security:\n  overload_wait_ms: 0'
	bench_config "$dir/ps" "$security"
	rm -f "$dir"/*_counts.csv "$dir/uac.csv"
	(cd "$dir/ps" && exec "$BIN" serve --config parkswitch.yaml > ../parkswitch.log 2>&1) &
	local sw=$!
	pids+=($sw)
	bench_healthy "$dir/parkswitch.log" || exit 1
	(cd "$dir" && exec timeout $((SECS + 100)) sipp -sn uas -i 127.0.0.3 -p 5070 -nostdin -buff_size 4194304 > uas.out 2>&1) &
	local uas=$!
	pids+=($uas)
	sleep 1
	local c0 t0 t1 c1
	c0=$(awk '{print $14 + $15}' "/proc/$sw/stat")
	t0=$(date +%s.%N)
	# The control's state twice a second: smoothed wait (s), share admitted.
	(while kill -0 "$sw" 2>/dev/null; do
		curl -fsS -m 1 http://127.0.0.1:18081/metrics 2>/dev/null |
			awk '/^parkswitch_sched_wait_seconds / {w = $2} /^parkswitch_overload_admitted_ratio / {a = $2} END {print w, a}'
		sleep 0.5
	done) > "$dir/control.txt" &
	local sampler=$!
	(cd "$dir" && exec timeout $((SECS + 90)) sipp -sf "$HERE/uac_overload.xml" 127.0.0.1:5060 -s 2000 -i 127.0.0.2 -p 5060 \
		-r "$RATE" -m $((RATE * SECS)) -l 20000 -nostdin -buff_size 4194304 \
		-timeout $((SECS + 80))s -timeout_error -trace_stat -stf uac.csv -trace_counts -fd 1 > uac.out 2>&1)
	t1=$(date +%s.%N)
	c1=$(awk '{print $14 + $15}' "/proc/$sw/stat" 2>/dev/null) || { echo "overload: the switch died; see $dir/parkswitch.log" >&2; exit 1; }
	kill "$sw" "$uas" "$sampler" 2>/dev/null
	wait "$sw" "$uas" "$sampler" 2>/dev/null
	# The counts file is cumulative, one row a period: in its last row, the
	# first 503 received is the shed and the first 200 the INVITE's answer.
	local counts noports
	counts=$(ls "$dir"/*_counts.csv | head -1)
	noports=$(grep -c '"cannot set up media"' "$dir/parkswitch.log")
	awk -F';' -v side="$side" -v rate="$RATE" -v secs="$SECS" -v t0="$t0" -v t1="$t1" -v noports="$noports" -v cpu=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
		-v stat="$(tail -1 "$dir/uac.csv")" -v hdr="$(head -1 "$dir/uac.csv")" '
		NR == 1 { split($0, names, ";"); next }
		{ last = $0 }
		END {
			split(last, c, ";")
			for (i = 1; i in names; i++) {
				if (names[i] ~ /_503_Recv$/ && shed == "") shed = c[i]
				if (names[i] ~ /_200_Recv$/ && ok == "") ok = c[i]
			}
			n = split(hdr, h, ";"); split(stat, v, ";")
			for (i = 1; i <= n; i++) s[h[i]] = v[i]
			fast = 0; all = 0
			for (i = 1; i <= n; i++) if (h[i] ~ /^ResponseTimeRepartition1_/) {
				all += v[i]
				if (h[i] !~ /(<500|>=500)$/) fast += v[i]
			}
			took = t1 - t0
			printf "%s: offered %d calls/s for %d s: answered %d, 503 %d (%d of them for want of media ports), failed %d, retransmissions %d; %.1f s to get through, %.0f answered calls/s, %.1f%% of answers within 200 ms; %.3f CPU-ms per answered call\n",
				side, rate, secs, ok, shed, noports, s["FailedCall(C)"], s["Retransmissions(C)"], took, ok / took,
				all ? 100 * fast / all : 0, ok ? cpu / hz * 1000 / ok : 0
		}' "$counts"
}

for side in $ORDER; do
	step "$side"
done
echo "output in $OUT"
