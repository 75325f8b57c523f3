# parkswitch — build, run and test.
GO       ?= go
BIN      := bin/parkswitch
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
CONFIG   ?= configs/parkswitch.yaml

# staticcheck, pinned: lint installs this version where go install puts it
# when that binary is missing or another version.
STATICCHECK_VERSION := 0.8.2
STATICCHECK ?= $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)/staticcheck

.PHONY: all build run test unit e2e bench bench-ratio soak lint fuzz deps-test deps-interop deps-browser deps-bench interop clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/parkswitch

# Start the switch on the default configuration (demo users 1001–1005).
run: build
	$(BIN) serve --config $(CONFIG) --log-pretty

# Everything CI runs: tools the tests need, vet, the race-enabled test suite
# (unit and end-to-end, SIPp and the pages in headless Chromium included).
test: deps-test deps-interop deps-browser lint
	PARKSWITCH_REQUIRE_SIPP=1 PARKSWITCH_REQUIRE_SIPVICIOUS=1 PARKSWITCH_REQUIRE_INTEROP=1 PARKSWITCH_REQUIRE_BROWSER=1 $(GO) test -race -count=1 -timeout 8m ./...
	# Allocation checks again without -race, under which sync.Pool drops
	# buffers at random (pion/srtp pools its keystream buffer, the SIP
	# listener its system-call state).
	$(GO) test -count=1 -run 'Allocs' ./media/ ./sip/

# deps-test installs SIPp and sipvicious (svcrack, svwar) when they are
# missing (Debian packages sip-tester and sipvicious).
deps-test:
	@command -v sipp >/dev/null 2>&1 || { \
		echo "installing SIPp (sip-tester)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq sip-tester; }
	@command -v svcrack >/dev/null 2>&1 && command -v svwar >/dev/null 2>&1 || { \
		echo "installing sipvicious"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq sipvicious; }

# Interoperability with real softphones (baresip, Linphone) against the
# switch; also part of `make test`.
interop: deps-interop
	PARKSWITCH_REQUIRE_INTEROP=1 $(GO) test -race -count=1 -timeout 5m -run Interop ./cmd/parkswitch/

# deps-interop installs the softphones when they are missing (Debian
# packages baresip-core and linphone-cli).
deps-interop:
	@command -v baresip >/dev/null 2>&1 || { \
		echo "installing baresip (baresip-core)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq baresip-core; }
	@command -v linphonec >/dev/null 2>&1 || { \
		echo "installing Linphone (linphone-cli)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq linphone-cli; }

# deps-browser installs what the browser tests drive the pages with, when
# it is missing: Debian's chromium package (the tests never download a
# browser) and playwright-core at the version testdata/browser's
# package-lock.json pins, into testdata/browser/node_modules (npm ci).
# Node.js 20 or later must be there already.
deps-browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Chromium (chromium)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		echo "the browser tests need Node.js 20 or later and npm: install them"; exit 1; }
	@cd testdata/browser && node installed.js || { \
		echo "installing playwright-core (npm ci in testdata/browser)"; \
		PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund; }

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(STATICCHECK) -version 2>/dev/null | grep -q '($(STATICCHECK_VERSION))' || { \
		echo "installing staticcheck v$(STATICCHECK_VERSION)"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION); }
	$(STATICCHECK) -checks all ./...

# Benchmarks: relay cost per packet, SDP rewriting, calls per second through
# the switch driven by SIPp. Figures are printed, not asserted.
bench: deps-test deps-browser build
	$(GO) test -run '^$$' -bench . -skip 'MusicOnHoldLive|RestartToMusic|ClusterParkRate|LampMemory|BoardLatency|Board1000' -benchmem ./media/ ./park/ ./sip/... ./store/... ./cmd/parkswitch/...
	# Run once each: 5,000 parked calls hearing music for 10 s, a sustained
	# 30 s step, 1,000 parked calls restarted, 20,000 park lamps, 100 parks
	# watched on the board in Chromium, and the board with 1,000 parked calls.
	$(GO) test -run '^$$' -bench MusicOnHoldLive -benchtime 1x ./media/
	$(GO) test -run '^$$' -bench ClusterParkRate -benchtime 1x ./park/
	$(GO) test -run '^$$' -bench RestartToMusic -benchtime 1x -timeout 20m ./cmd/parkswitch/
	$(GO) test -run '^$$' -bench LampMemory -benchtime 1x -timeout 20m ./cmd/parkswitch/
	PARKSWITCH_REQUIRE_BROWSER=1 $(GO) test -run '^$$' -bench BoardLatency -benchtime 1x -timeout 15m ./cmd/parkswitch/
	$(GO) test -run '^$$' -bench Board1000 -benchtime 1x -timeout 20m ./cmd/parkswitch/
	BENCH_STEP_SECONDS=30 ./testdata/bench/callrate.sh $(BIN)
	# Offered more than it takes: shedding on, then off (OVERLOAD_RATE is
	# above the switch's sustained rate on a 2-CPU machine).
	RATE=$(OVERLOAD_RATE) SECS=30 ./testdata/bench/overload.sh $(BIN)
	$(MAKE) bench-ratio

# The side-by-side figures of SPEC §9: the switch and its peer in one run
# on this machine, steps of BENCH_SECS (30 s: several times a completed
# transaction's 2 s wait). Each script prints its CSV and a last line
# with the ratio; the scratch directories are kept under BENCH_OUT.
OVERLOAD_RATE ?= 5000
BENCH_SHARED ?= ../shared/bench
BENCH_SECS   ?= 30
# Outside the tree: the scripts copy the checkout to build it, and a copy
# that includes its own output never ends.
BENCH_OUT    ?= $(or $(TMPDIR),/tmp)/parkswitch-bench
bench-ratio: deps-bench
	@test -d $(BENCH_SHARED) || { echo "$(BENCH_SHARED) is missing: set BENCH_SHARED to the side-by-side scripts"; exit 1; }
	rm -rf $(BENCH_OUT) && mkdir -p $(BENCH_OUT)
	SECS=$(BENCH_SECS) RATES="500 1000 1500 2000 2500 3000 3500 4000 5000 6000 7000 8000" OUT=$(BENCH_OUT)/proxy $(BENCH_SHARED)/bench_cps_ratio.sh . | tee $(BENCH_OUT)/proxy.txt
	REF=rtpengine SECS=$(BENCH_SECS) RATES="250 500 750 1000 1500 2000 2500 3000 3500 4000 5000" OUT=$(BENCH_OUT)/rtpengine $(BENCH_SHARED)/bench_cps_ratio.sh . | tee $(BENCH_OUT)/rtpengine.txt
	NS="100 250 500 1000 1500 2000" HOLD=$(BENCH_SECS) OUT=$(BENCH_OUT)/media $(BENCH_SHARED)/bench_media_ratio.sh . | tee $(BENCH_OUT)/media.txt

# The soak of SPEC §9's issue: an hour of SIPp calls at SOAK_RATE (half the
# sustained rate in BENCHMARKS.md) with SOAK_PARKED parked calls churning
# and registrations refreshing, sampled every 10 s into bin/soak (soak.csv,
# soak.svg); fails on a failed call or on growth after the first 10
# minutes. Not part of make test.
SOAK        ?= 1h
SOAK_RATE   ?= 1250
SOAK_PARKED ?= 500
soak: deps-test
	PARKSWITCH_SOAK=$(SOAK) PARKSWITCH_SOAK_RATE=$(SOAK_RATE) PARKSWITCH_SOAK_PARKED=$(SOAK_PARKED) \
		PARKSWITCH_SOAK_OUT=$(CURDIR)/bin/soak $(GO) test -count=1 -run '^TestSoak$$' -timeout 0 -v ./cmd/parkswitch/

# deps-bench installs the peers the side-by-side benchmarks run (Debian
# packages kamailio, kamailio-extra-modules, rtpengine-daemon) and what
# their scripts use, when missing.
deps-bench: deps-test
	@for c in kamailio:kamailio rtpengine:rtpengine-daemon tshark:tshark sox:sox curl:curl; do 		command -v $${c%%:*} >/dev/null 2>&1 || pkgs="$$pkgs $${c#*:}"; done; 		dpkg -s kamailio-extra-modules >/dev/null 2>&1 || pkgs="$$pkgs kamailio-extra-modules"; 		if [ -n "$$pkgs" ]; then echo "installing$$pkgs"; 		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; 		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$pkgs; fi

# Fuzz every fuzz target in turn for FUZZTIME each (go test runs one
# target per invocation). Crashers land in the package's testdata/fuzz and
# then run as seeds in every go test.
FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzRequest:./sip/sipcheck FuzzVerify:./sip/digest FuzzSDP:./media FuzzParse:./cmd/parkswitch/internal/config

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg; \
	done

clean:
	rm -rf bin testdata/browser/node_modules
