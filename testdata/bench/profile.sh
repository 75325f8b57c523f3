#!/usr/bin/env bash
# CPU and allocation profile of the switch under a sustained SIPp call rate:
# the shared side-by-side bench's trunk → static-contact call (INVITE, 100,
# 180, 200, ACK, immediate BYE), with debug.pprof_listen on loopback.
#
#   ./testdata/bench/profile.sh bin/parkswitch [OUT_DIR]
#
# Env: RATE [1000] calls/s, SECS [40] of calls (the profile is the middle
# PROFILE_SECS [20] of them). SIPp's calls carry SDP, so each call gets its
# relay ports, as in the shared bench. Writes OUT_DIR/cpu.pprof, allocs.pprof, heap.pprof
# and prints the switch's CPU-ms per call (utime + stime over the calls,
# the profiler's own cost included) and peak RSS, then the top of the CPU
# and allocation profiles; the uac's statistics are in OUT_DIR/uac.csv.
# Ports: 127.0.0.1:5060 (switch), 127.0.0.2:5060 (caller), 127.0.0.3:5070
# (callee), 127.0.0.1:6061 (pprof), 127.0.0.1:18081 (http); RTP 20000-39999.
set -u -o pipefail
[ $# -ge 1 ] && [ -x "$1" ] || { echo "usage: $0 PATH/TO/parkswitch [OUT_DIR]" >&2; exit 2; }
command -v sipp >/dev/null || { echo "profile: sipp not found (make deps-test)" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
OUT=${2:-$(mktemp -d)}
RATE=${RATE:-1000}
SECS=${SECS:-40}
PROFILE_SECS=${PROFILE_SECS:-20}
mkdir -p "$OUT/ps"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

. "$(dirname "$0")/switch.sh"
bench_config "$OUT/ps" "debug:
  pprof_listen: 127.0.0.1:6061"

(cd "$OUT/ps" && exec timeout $((SECS + 120)) "$BIN" serve --config parkswitch.yaml > ../parkswitch.log 2>&1) &
pids+=($!)
bench_healthy "$OUT/parkswitch.log" || exit 1

(cd "$OUT" && exec timeout $((SECS + 90)) sipp -sn uas -i 127.0.0.3 -p 5070 -nostdin -buff_size 4194304 > uas.out 2>&1) &
pids+=($!)
sleep 1
pid=$(pgrep -x -P "$(pgrep -f -n "timeout $((SECS + 120)) $BIN")" parkswitch)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # utime + stime, in clock ticks
c0=$(cpu)
(cd "$OUT" && exec timeout $((SECS + 60)) sipp -sn uac 127.0.0.1:5060 -s 2000 -i 127.0.0.2 -p 5060 \
	-r "$RATE" -m $((RATE * SECS)) -l 5000 -d 0 -nostdin -buff_size 4194304 \
	-default_behaviors all,-abortunexp -timeout $((SECS + 40))s -timeout_error \
	-trace_stat -stf uac.csv -fd 1 > uac.out 2>&1) &
uac=$!
pids+=($uac)
sleep $(((SECS - PROFILE_SECS) / 2))
curl -fsS -m 5 -o "$OUT/allocs0.pprof" http://127.0.0.1:6061/debug/pprof/allocs
curl -fsS -m $((PROFILE_SECS + 10)) -o "$OUT/cpu.pprof" "http://127.0.0.1:6061/debug/pprof/profile?seconds=$PROFILE_SECS"
curl -fsS -m 5 -o "$OUT/allocs.pprof" http://127.0.0.1:6061/debug/pprof/allocs
curl -fsS -m 5 -o "$OUT/heap.pprof" http://127.0.0.1:6061/debug/pprof/heap
wait "$uac"
c1=$(cpu)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "switch: $(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n=$((RATE * SECS)) 'BEGIN {printf "%.3f CPU-ms per call", c / hz * 1000 / n}') over the $SECS s of calls (profiling included), peak RSS $((hwm / 1024)) MB"
echo "uac: $(tail -1 "$OUT/uac.csv" | awk -F';' '{print "successful " $16 ", failed " $18 ", retransmissions " $58}')"
go tool pprof -top -nodecount=40 "$BIN" "$OUT/cpu.pprof" 2>/dev/null | head -50
echo "--- allocations during the profile (objects)"
go tool pprof -top -nodecount=25 -sample_index=alloc_objects -base "$OUT/allocs0.pprof" "$BIN" "$OUT/allocs.pprof" 2>/dev/null | head -32
echo "profiles in $OUT"
