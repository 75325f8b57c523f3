# Sourced by profile.sh and overload.sh: the switch they measure, as the
# shared side-by-side bench runs it (trunk 127.0.0.2:5060 → user 2000 at a
# static contact 127.0.0.3:5070, park off), on 127.0.0.1:5060 with its
# HTTP on 127.0.0.1:18081 and RTP on 20000-39999.

# bench_config DIR [EXTRA_YAML]: DIR/parkswitch.yaml and policies.yaml;
# EXTRA_YAML is appended to the main file (whole top-level sections).
bench_config() {
	mkdir -p "$1"
	cat > "$1/parkswitch.yaml" <<EOC
server:
  domain: bench.test
  sip_listen: ["udp://127.0.0.1:5060"]
  http_listen: "127.0.0.1:18081"
  advertise_ip: "127.0.0.1"
media:
  rtp_port_min: 20000
  rtp_port_max: 39999
park:
  policy_file: policies.yaml
users:
  - id: u2000@bench.test
    extension: "2000"
    password: bench-secret-not-used
    contact: "sip:2000@127.0.0.3:5070"
trunks:
  - name: bench-uac
    address: 127.0.0.2:5060
    transport: udp
${2:-}
EOC
	printf 'policies:\n  - identity: Global\n    allow_call_park: false\n' > "$1/policies.yaml"
}

# bench_healthy LOG: waits up to 20 s for the switch's /healthz, or says
# where its log is and fails.
bench_healthy() {
	for _ in $(seq 1 80); do curl -fsS -m 1 -o /dev/null http://127.0.0.1:18081/healthz 2>/dev/null && return 0; sleep 0.25; done
	echo "the switch did not start; see $1" >&2
	return 1
}
