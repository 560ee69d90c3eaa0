# ovsbpf build, test and benchmark entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)
FUZZTIME ?= 20s
# Minimizing a new input re-runs it once for each candidate cut: a
# 1,500-byte frame took the whole FUZZTIME of FuzzParse (a few thousand
# executions instead of a few hundred thousand). Bounded here.
FUZZMINIMIZETIME ?= 2s

.PHONY: help build test setup unit race fuzz generate check-generated lint bench-flowxlate bench-datapath demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build every package and the binaries into bin/
	$(GO) build ./...
	$(GO) build -o bin/ ./cmd/...

setup: ## install the Debian packages the tests need and mount bpffs (as root)
	./scripts/setup.sh

test: setup lint check-generated unit race fuzz ## everything CI runs: lint, generated files, all tests (no skips allowed), the concurrent ones under -race, bounded fuzzing

unit: ## run all tests; a skipped test fails the run
	$(GO) test -json -count=1 -timeout 20m ./... | $(GO) run ./internal/testreport

# The packages that run goroutines or share state between them: the slow
# path's handlers and revalidator, the datapath's maps and counters, the
# OVSDB monitors, the control socket, the daemon and the test harnesses
# that drive it. integration/chassis builds ovsbpfd with -race under -race
# and fails on the daemon's race reports. (About 1.5 min on 2 cores.)
RACE_PKGS := ./upcall/... ./datapath/... ./internal/chassis/... ./internal/unixctl/... ./ovsdb/... \
	./cmd/... ./internal/ovntest/... ./internal/netns/... ./integration/chassis/...

race: ## run the concurrent packages' tests under the race detector; a race or a skip fails the run
	$(GO) test -race -json -count=1 -timeout 20m $(RACE_PKGS) | $(GO) run ./internal/testreport

fuzz: ## fuzz the OVN parsers, the eBPF parser and fast path, upcall decoding (FUZZTIME each), and megaflow soundness with a random seed
	$(GO) test -run '^$$' -fuzz '^FuzzParseMatch$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./flowxlate/ovn
	$(GO) test -run '^$$' -fuzz '^FuzzParseActions$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./flowxlate/ovn
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./bpf/testprogs
	$(GO) test -run '^$$' -fuzz '^FuzzIngress$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./datapath
	$(GO) test -run '^$$' -fuzz '^FuzzParseUpcall$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./datapath
	OVSBPF_SOUNDNESS_SEED=random OVSBPF_SOUNDNESS_SAMPLES=512 OVSBPF_SOUNDNESS_FRAMES=32 \
		$(GO) test -count=1 -run '^TestMegaflowSoundness$$' ./integration

generate: ## regenerate the OVSDB models and the eBPF objects and bindings (needs clang-19)
	$(GO) generate ./...

check-generated: ## fail if the committed generated files differ from what make generate makes
	$(GO) generate ./...
	@git diff --exit-code --stat -- ovsdb bpf ct || { echo "generated files are stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- ovsdb bpf ct)" || { git status --porcelain -- ovsdb bpf ct; echo "make generate made untracked files: commit them"; exit 1; }

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench-flowxlate: ## translate a Southbound DB from a large topology, beside a stock ovn-controller on it; prints name value lines
	./integration/bench/flowxlate.sh

bench-datapath: ## the eBPF datapath beside an empty program, a Linux bridge and OVS userspace (root); prints name value lines
	./integration/bench/datapath.sh

demo: setup build ## bring up an OVN topology and trace packets with ovsbpfctl beside ovn-trace (installs what it needs, as make test does)
	./scripts/demo.sh

clean:
	rm -rf bin
