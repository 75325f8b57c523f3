#!/usr/bin/env bash
# Call-rate benchmark: calls per second through parkswitch, driven by SIPp on
# loopback (SPEC §9). `make bench` runs it as:
#
#   ./testdata/bench/callrate.sh bin/parkswitch
#
# It writes a bench configuration into a temporary directory and measures two
# figures. For each, it starts the switch and a SIPp answering phone (uas.xml,
# the static contact of user 2000), then steps a SIPp caller through
# increasing call rates:
#
#   trunk  a carrier trunk (127.0.0.2, trusted by source IP, no digest) calls
#          2000: INVITE/100/180/200/ACK and an immediate BYE, no RTP
#          (uac_trunk.xml). SPEC target: >= 3,500 calls/s with 0 failed calls.
#   auth   user 1001 calls 2000 with digest on every INVITE (407, ACK, INVITE
#          with Proxy-Authorization), relay ports allocated for both legs, an
#          immediate BYE, no RTP (uac_auth.xml). SPEC target: >= 1,000 calls/s.
#
# A step passes when every call succeeded (0 failed, none left unfinished)
# and the achieved rate (successful calls / SIPp's elapsed time, first INVITE
# to last final response) is at least 90% of the target rate. A figure stops
# at its first step that does not pass; its result is the highest passing
# rate. Benchmarks report, they do not assert: the script exits 0 when a
# target is missed, and non-zero only when the switch does not start or dies
# during the run (or on a usage error).
#
# Tunables (environment):
#   BENCH_RATES_TRUNK   rates of the trunk figure  (default "500 1000 2000 2500 3000 3500 5000 7000"; empty: skip)
#   BENCH_RATES_AUTH    rates of the digest figure (default "250 500 1000 1500 2000 3000"; empty: skip)
#   BENCH_STEP_SECONDS  seconds of calls per step  (default 4; calls = rate x seconds, at least 1000)
#   BENCH_ALL_STEPS=1   run every step even after one did not pass
#   BENCH_BUDGET        seconds the whole run may take (default 40 steps' worth,
#                       at least 170); a step that would end later is skipped
#   BENCH_PORT_BASE     first of the local ports used (default 31060; they span
#                       BASE..BASE+960)
#   BENCH_RTP_MIN/MAX   the switch's relay port range (default 10000-19999: away
#                       from the 20000-29999 of the example configuration, which a
#                       switch running next to the bench may hold, and below the
#                       kernel's ephemeral ports, 32768-60999 on Linux)
#   BENCH_KEEP=1        keep the work directory (configuration, switch logs,
#                       SIPp statistics, screens and error traces); it is
#                       always kept when the switch did not start or died
#
# Everything stays on 127.0.0.0/8; every SIPp run is bounded by -m and
# -timeout, and every process started here is stopped on exit.
set -u -o pipefail

usage() { echo "usage: $0 PATH/TO/parkswitch" >&2; exit 2; }
[ $# -eq 1 ] || usage
[ -x "$1" ] || { echo "callrate: $1 is not an executable (run make build)" >&2; exit 2; }
command -v sipp >/dev/null 2>&1 || { echo "callrate: sipp not found (apt-get install sip-tester)" >&2; exit 2; }

BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
RATES_TRUNK=${BENCH_RATES_TRUNK-500 1000 2000 2500 3000 3500 5000 7000}
RATES_AUTH=${BENCH_RATES_AUTH-250 500 1000 1500 2000 3000}
STEP_SECONDS=${BENCH_STEP_SECONDS:-4}
ALL_STEPS=${BENCH_ALL_STEPS:-0}
BASE=${BENCH_PORT_BASE:-31060}
RTP_MIN=${BENCH_RTP_MIN:-10000}
RTP_MAX=${BENCH_RTP_MAX:-19999}
# Seconds for the whole run; steps that would end later are skipped. Forty
# steps' worth, so 30 s steps get through both figures.
BUDGET=${BENCH_BUDGET:-$((STEP_SECONDS * 40 > 170 ? STEP_SECONDS * 40 : 170))}

SIP_PORT=$BASE           # switch, udp 127.0.0.1
TRUNK_PORT=$((BASE + 10)) # SIPp caller as the trunk, 127.0.0.2
USER_PORT=$((BASE + 12))  # SIPp caller as user 1001, 127.0.0.1
HTTP_PORT=$((BASE + 20))  # switch admin API
UAS_PORT=$((BASE + 30))   # SIPp answering phone (2000's contact), 127.0.0.1
MP_TRUNK=$((BASE + 940))  # SIPp media ports (bound, never used: no RTP)
MP_USER=$((BASE + 950))
MP_UAS=$((BASE + 960))
BUF=4194304
HZ=$(getconf CLK_TCK)
T0=$SECONDS
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
SIP_SOCK=$(printf '0100007F:%04X' "$SIP_PORT") # the switch's socket in /proc/net/udp

WORK=$(mktemp -d "${TMPDIR:-/tmp}/parkswitch-bench.XXXXXX")
SW_PID=""
UAS_PID=""
UAC_PID=""
KEEP=${BENCH_KEEP:-0}

stop_pid() { # pid [signal]: stop a process started here and wait for it (up to 5 s)
	[ -n "$1" ] || return 0
	kill "-${2:-TERM}" "$1" 2>/dev/null || return 0
	for _ in $(seq 25); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

cleanup() {
	stop_pid "$UAC_PID"
	stop_pid "$UAS_PID"
	stop_pid "$SW_PID"
	if [ "$KEEP" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "callrate: $*" >&2
	if [ -s "$WORK/${FIG:-x}/switch.log" ]; then
		echo "--- last lines of the switch log ---" >&2
		tail -n 20 "$WORK/$FIG/switch.log" >&2
	fi
	KEEP=1
	exit 1
}

http_get() { # path → body on stdout
	if command -v curl >/dev/null 2>&1; then
		curl -fsS --max-time 2 "http://127.0.0.1:$HTTP_PORT$1" 2>/dev/null
	else
		timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$HTTP_PORT"' &&
			printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "'"$1"'" >&3 &&
			sed "1,/^\r\{0,1\}$/d" <&3' 2>/dev/null
	fi
}

metric() { # name → value (0 when absent)
	http_get /metrics | awk -v n="$1" '$1 == n { v = $2 } END { print (v == "" ? 0 : v) }'
}

switch_alive() { [ -n "$SW_PID" ] && kill -0 "$SW_PID" 2>/dev/null; }

cpu_ticks() { # pid → utime+stime in clock ticks
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

busy_ticks() { # whole machine: busy and total jiffies
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

sock_drops() { # datagrams the kernel dropped on the switch's SIP socket (buffer full)
	awk -v a="$SIP_SOCK" 'toupper($2) == a { d += $NF } END { print d + 0 }' /proc/net/udp
}

rcvbuf_errors() { # machine-wide UDP receive-buffer drops (every socket, SIPp's too)
	awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") k = i; h = 1 } else v = $k } END { print v + 0 }' /proc/net/snmp
}

csv_field() { # file column-name → value in the last row
	awk -F';' -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } { v = $k } END { print v }' "$1"
}

epoch() { # "date<TAB>time<TAB>epoch" → epoch
	printf '%s\n' "$1" | awk -F'\t' '{ print $3 }'
}

calls_for() { # rate → calls in a step
	local n=$(($1 * STEP_SECONDS))
	[ "$n" -lt 1000 ] && n=1000
	echo "$n"
}

# ---------------------------------------------------------------- config
cat >"$WORK/parkswitch.yaml" <<EOF
# parkswitch call-rate benchmark (written by testdata/bench/callrate.sh)
server:
  domain: contoso.com
  sip_listen: ["udp://127.0.0.1:$SIP_PORT"]
  http_listen: "127.0.0.1:$HTTP_PORT"
media:
  rtp_port_min: $RTP_MIN
  rtp_port_max: $RTP_MAX
  rtp_timeout_seconds: 0
park:
  policy_file: policies.yaml
users:
  - id: 1001@contoso.com
    display_name: Bench Caller
    password: demo1001
  - id: 2000@contoso.com
    display_name: Bench Answer
    password: bench2000
    contact: sip:2000@127.0.0.1:$UAS_PORT
trunks:
  - name: bench
    address: 127.0.0.2:$TRUNK_PORT
    transport: udp
    outbound_prefix: "9"
EOF
cat >"$WORK/policies.yaml" <<'EOF'
policies:
  - identity: Global
    allow_call_park: false
EOF
"$BIN" check --config "$WORK/parkswitch.yaml" >"$WORK/check.log" 2>&1 ||
	{ cat "$WORK/check.log" >&2; die "the bench configuration does not validate"; }

# ---------------------------------------------------------------- one figure
ROWS=()    # table rows
CMDS=()    # SIPp command of each step
NOTES=()   # failure details
PROCS=()   # the switch process after each figure
declare -A BEST=([trunk]=0 [auth]=0)
declare -A TARGET=([trunk]=3500 [auth]=1000)
declare -A DESC=([trunk]="trunk -> static contact, no auth, no media" [auth]="digest on every INVITE, relay ports allocated")
any_failed=0
FIG=""
UAS_CMD=""

start_figure() { # figure rates...
	FIG=$1
	shift
	mkdir -p "$WORK/$FIG"
	"$BIN" serve --config "$WORK/parkswitch.yaml" --log-level warn >"$WORK/$FIG/switch.log" 2>&1 &
	SW_PID=$!
	for _ in $(seq 50); do
		switch_alive || die "the switch exited at start"
		[ "$(http_get /healthz)" = ok ] && break
		sleep 0.2
	done
	[ "$(http_get /healthz)" = ok ] || die "the switch did not answer /healthz within 10 s"

	local total=0 r
	for r in "$@"; do total=$((total + $(calls_for "$r"))); done
	# -abortunexp off: an INVITE retransmitted by the switch is logged, not
	# fatal (see uas.xml).
	UAS_CMD="sipp -sf $HERE/uas.xml -i 127.0.0.1 -p $UAS_PORT -mi 127.0.0.1 -mp $MP_UAS -buff_size $BUF -default_behaviors all,-abortunexp -m $((2 * total)) -timeout 180s -nostdin -trace_stat -stf uas_stat.csv -fd 1 -trace_err -error_file uas_errors.log"
	(cd "$WORK/$FIG" && exec $UAS_CMD >/dev/null 2>uas.stderr) &
	UAS_PID=$!
	sleep 0.5
	kill -0 "$UAS_PID" 2>/dev/null || { cat "$WORK/$FIG/uas.stderr" >&2; die "the SIPp answering phone did not start"; }
}

end_figure() {
	switch_alive || die "the switch is not running at the end of the $FIG figure"
	local ut st rss hwm threads
	read -r _ _ _ _ _ _ _ _ _ _ _ ut st _ < <(sed 's/^.*) //' "/proc/$SW_PID/stat")
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$SW_PID/status")
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$SW_PID/status")
	threads=$(awk '/^Threads/ { print $2 }' "/proc/$SW_PID/status")
	# The answering phone: stop it gracefully (SIGUSR1) for its final statistics.
	stop_pid "$UAS_PID" USR1
	UAS_PID=""
	local uas_ok uas_failed
	uas_ok=$(csv_field "$WORK/$FIG/uas_stat.csv" 'SuccessfulCall(C)' 2>/dev/null)
	uas_failed=$(csv_field "$WORK/$FIG/uas_stat.csv" 'FailedCall(C)' 2>/dev/null)
	PROCS+=("$(printf '%-6s switch CPU %s, RSS %d MiB (peak %d MiB), %s threads; answering phone: %s calls completed, %s failed' \
		"$FIG" "$(awk -v u="$ut" -v s="$st" -v hz="$HZ" 'BEGIN { printf "%.2f s user + %.2f s system", u / hz, s / hz }')" \
		$((rss / 1024)) $((hwm / 1024)) "$threads" "${uas_ok:-?}" "${uas_failed:-?}")")
	stop_pid "$SW_PID"
	SW_PID=""
}

# run_step figure rate → returns 0 when the step passed
run_step() {
	local fig=$1 rate=$2
	local n limit d cmd
	n=$(calls_for "$rate")
	limit=$((n / rate + 12))
	d="$WORK/$fig/$rate"
	mkdir -p "$d"
	case $fig in
	trunk)
		cmd="sipp 127.0.0.1:$SIP_PORT -sf $HERE/uac_trunk.xml -s 2000 -i 127.0.0.2 -p $TRUNK_PORT -mi 127.0.0.2 -mp $MP_TRUNK" ;;
	auth)
		cmd="sipp 127.0.0.1:$SIP_PORT -sf $HERE/uac_auth.xml -s 2000 -key caller 1001 -au 1001 -ap demo1001 -i 127.0.0.1 -p $USER_PORT -mi 127.0.0.1 -mp $MP_USER" ;;
	esac
	cmd="$cmd -r $rate -m $n -buff_size $BUF -recv_timeout 6000 -timeout ${limit}s -nostdin -trace_stat -stf stat.csv -fd 1 -trace_err -error_file errors.log -trace_screen -screen_file screen.log"
	CMDS+=("$(printf '%-5s %5s cps: %s' "$fig" "$rate" "$cmd")")

	if [ $((SECONDS - T0 + limit)) -gt "$BUDGET" ]; then
		ROWS+=("$(printf '%-6s %6s %6s  %s' "$fig" "$rate" "$n" "skipped (time budget)")")
		return 1
	fi

	local sw0 m0 b0 dr0 rb0
	sw0=$(cpu_ticks "$SW_PID")
	dr0=$(sock_drops)
	rb0=$(rcvbuf_errors)
	read -r b0 m0 < <(busy_ticks)
	(cd "$d" && exec $cmd >/dev/null 2>stderr) &
	UAC_PID=$!
	# CPU of the SIPp caller: sampled while it runs (the last sample is kept).
	local uac_ticks=0 t
	while kill -0 "$UAC_PID" 2>/dev/null; do
		t=$(cpu_ticks "$UAC_PID")
		[ "${t:-0}" -gt 0 ] && uac_ticks=$t
		sleep 0.2
	done
	wait "$UAC_PID"
	local rc=$?
	UAC_PID=""
	local sw1 m1 b1 dr1 rb1
	sw1=$(cpu_ticks "$SW_PID")
	dr1=$(sock_drops)
	rb1=$(rcvbuf_errors)
	read -r b1 m1 < <(busy_ticks)

	switch_alive || die "the switch died during the $fig step at $rate calls/s"

	local ok=0 failed=0 elapsed=0 achieved=0 rtd="-" retrans=0 stray=0 why=""
	if [ -s "$d/stat.csv" ]; then
		ok=$(csv_field "$d/stat.csv" 'SuccessfulCall(C)')
		failed=$(csv_field "$d/stat.csv" 'FailedCall(C)')
		retrans=$(csv_field "$d/stat.csv" 'Retransmissions(C)')
		# Messages SIPp could not match to a running call (e.g. a response
		# retransmitted after the call ended).
		stray=$(($(csv_field "$d/stat.csv" 'DeadCallMsgs(C)') + $(csv_field "$d/stat.csv" 'OutOfCallMsgs(C)')))
		local s e
		s=$(epoch "$(csv_field "$d/stat.csv" StartTime)")
		e=$(epoch "$(csv_field "$d/stat.csv" CurrentTime)")
		elapsed=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
		achieved=$(awk -v n="$ok" -v t="$elapsed" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')
		rtd=$(csv_field "$d/stat.csv" 'ResponseTime1(C)' |
			awk -F: '{ printf "%.0f", ($1 * 3600 + $2 * 60 + $3) * 1000 + $4 / 1000 }')
		# Failure causes SIPp counted (cumulative counters that are not zero).
		why=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) h[i] = $i; next }
			{ for (i in h) v[i] = $i }
			END { for (i in h) if (h[i] ~ /^Failed.+\(C\)$/ && v[i] + 0 > 0) { x = h[i]; sub(/^Failed/, "", x); sub(/\(C\)$/, "", x); printf "%s%s=%s", s, x, v[i]; s = " " } }' "$d/stat.csv")
	fi
	local unfinished=$((n - ok - failed))
	[ "$unfinished" -lt 0 ] && unfinished=0
	local lost=$((failed + unfinished))

	# Let the switch settle and check that every call was torn down.
	local active dialogs ports
	for _ in $(seq 20); do
		active=$(metric parkswitch_calls_active)
		dialogs=$(metric parkswitch_dialogs)
		ports=$(metric parkswitch_rtp_ports_in_use)
		[ "$active" = 0 ] && [ "$dialogs" = 0 ] && [ "$ports" = 0 ] && break
		sleep 0.25
	done

	local swcpu uaccpu mcpu
	swcpu=$(awk -v a="$sw0" -v b="$sw1" -v t="$elapsed" -v hz="$HZ" 'BEGIN { printf "%.0f", (t > 0 ? (b - a) / hz / t * 100 : 0) }')
	uaccpu=$(awk -v a="$uac_ticks" -v t="$elapsed" -v hz="$HZ" 'BEGIN { printf "%.0f", (t > 0 ? a / hz / t * 100 : 0) }')
	mcpu=$(awk -v b0="$b0" -v b1="$b1" -v m0="$m0" -v m1="$m1" 'BEGIN { printf "%.0f", (m1 > m0 ? (b1 - b0) / (m1 - m0) * 100 : 0) }')

	local verdict=pass
	if [ "$lost" -gt 0 ] || [ "$ok" -ne "$n" ]; then
		verdict=FAIL
	elif [ $((achieved * 10)) -lt $((rate * 9)) ]; then
		verdict=slow
	fi
	[ "$verdict" = pass ] && [ "$rate" -gt "${BEST[$fig]}" ] && BEST[$fig]=$rate
	local extra=""
	[ "$rc" -ne 0 ] && extra=" sipp-rc=$rc"
	if [ "$active$dialogs$ports" != 000 ]; then
		extra="$extra left:calls=$active,dialogs=$dialogs,ports=$ports"
	fi
	ROWS+=("$(printf '%-6s %6s %6s %8s %6s %7s %5s %5s %7s  %-13s %-6s %3s%%/%3s%%/%3s%%%s' \
		"$fig" "$rate" "$n" "$achieved" "$lost" "$retrans" "$stray" "$rtd" "$elapsed" \
		"$((dr1 - dr0))/$((rb1 - rb0))" "$verdict" "$swcpu" "$uaccpu" "$mcpu" "$extra")")
	if [ "$lost" -gt 0 ] || [ "$rc" -ne 0 ] || [ -n "$extra" ]; then
		any_failed=1
		NOTES+=("$fig $rate cps: $ok ok, $failed failed, $unfinished unfinished, $stray stray messages; SIPp: ${why:-no failure counters}")
		if [ -s "$d/errors.log" ]; then
			NOTES+=("  first SIPp error: $(grep -av '^The following events' "$d/errors.log" | head -n 2 | tr '\n\t\r' '   ' | cut -c1-300)")
		fi
	fi
	[ "$verdict" = pass ]
}

run_figure() { # figure rates...
	local fig=$1
	shift
	[ $# -gt 0 ] || return 0
	start_figure "$fig" "$@"
	local r
	for r in "$@"; do
		run_step "$fig" "$r" || [ "$ALL_STEPS" = 1 ] || break
	done
	end_figure
}

# shellcheck disable=SC2086 # the rate lists are word lists
run_figure trunk $RATES_TRUNK
# shellcheck disable=SC2086
run_figure auth $RATES_AUTH

# ---------------------------------------------------------------- report
echo
echo "parkswitch call rate: $(nproc) CPU ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r), $(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -n 1)"
echo "load average before the run: $LOAD0"
echo "steps of $STEP_SECONDS s of calls (at least 1000); pass = 0 failed calls and >= 90% of the target rate achieved"
echo "achieved = successful calls / SIPp's elapsed time; failed = failed + unfinished calls; retrans = SIPp's"
echo "retransmissions; stray = messages SIPp could not match to a call; rtd = mean first INVITE -> 200 (ms);"
echo "drops = datagrams the kernel dropped, receive buffer full: on the switch's SIP socket / on every socket;"
echo "cpu = switch / SIPp caller / whole machine (busy share of all CPUs) during the step, 100% = one core"
echo
printf '%-6s %6s %6s %8s %6s %7s %5s %5s %7s  %-13s %-6s %s\n' figure target calls achieved failed retrans stray rtd time_s drops result cpu
for row in "${ROWS[@]}"; do echo "$row"; done
echo
printf '%-48s %8s  %s\n' figure "best cps" "SPEC §9 target"
for f in trunk auth; do
	printf '%-48s %8s  %s\n' "${DESC[$f]}" "${BEST[$f]}" \
		">= ${TARGET[$f]}: $([ "${BEST[$f]}" -ge "${TARGET[$f]}" ] && echo met || echo MISSED)"
done
echo
echo "switch process at the end of each figure:"
for p in "${PROCS[@]}"; do echo "  $p"; done
echo
echo "SIPp commands (each run in its own directory); answering phone: $UAS_CMD"
for c in "${CMDS[@]}"; do echo "  $c"; done
if [ ${#NOTES[@]} -gt 0 ]; then
	echo
	echo "failed calls:"
	for x in "${NOTES[@]}"; do echo "  $x"; done
fi
if [ "$any_failed" = 1 ] && [ "$KEEP" != 1 ]; then
	echo
	echo "(BENCH_KEEP=1 keeps the SIPp error traces and the switch logs)"
fi
echo "total time: $((SECONDS - T0)) s"
exit 0
