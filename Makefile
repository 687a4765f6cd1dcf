# ec2init build and checks. `make test` is what CI runs (see .ci/run).
GO      ?= go
# A package version must start with a digit: v1.2.3 tags give 1.2.3, untagged
# trees 0.0.0~git<commit>.
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo $${v#v} || echo 0.0.0~git$$(git rev-parse --short HEAD 2>/dev/null || echo unknown))
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS    := ./...

.PHONY: all build test unit lint bench bench-compare clean package package-unlocked e2e fuzz load

GOARCH  ?= $(shell go env GOARCH)
NFPM    := go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

all: lint build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ec2init ./cmd/ec2init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/ec2init-stage ./cmd/ec2init-stage

# test: formatting and vet first (cheap, and CI must fail on them), then every test.
test: lint
	$(GO) test -race -count=1 $(PKGS)

unit:
	$(GO) test -short -count=1 $(PKGS)

# e2e: only the real-systemd and package tests (root, systemd-nspawn, a rootfs:
# test/e2e/mkrootfs.sh), verbose, with the measured boot time.
e2e:
	$(GO) test -count=1 -v ./test/e2e

# load: 10,000 simulated instances (each its own root and IMDS) fetching a
# signed artifact from one real S3 server (versitygw) behind a per-client rate
# limit, with a 30 s origin outage half-way (1 MiB artifact, not 64: see
# test/reliability/fleet_test.go), then 1,000 including their user data from a
# rate-limited https origin. Prints boot p50/p99/max, bytes served, retries and
# peak memory; about 8 minutes on 2 cores. Not part of test (too slow under -race).
load:
	EC2INIT_LOAD=1 $(GO) test -count=1 -v -timeout 30m -run '^(TestTenThousandInstances|TestThousandInstances)$$' ./test/reliability

# fuzz: every fuzz target for FUZZTIME each; a failing input is kept in the
# package's testdata/fuzz for the regular tests to replay.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./agent/userdata:FuzzParse ./agent/ec2metadata:FuzzParse \
	./agent/config:FuzzCloudConfig ./agent/imds/imdssim:FuzzParse
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) $${t%%:*} || exit 1; \
	done

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags manpages ./cmd/ec2init

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# bench-compare: ec2init and Debian's cloud-init 22.4 side by side (root,
# systemd-nspawn, hyperfine, GNU time, jq, strace, the e2e rootfs; about
# 15 minutes): boot overhead (first boot, first boot of an image that keeps
# its host keys, reboot), metadata reads, footprint, fsync calls, host-key
# generation, and issue #15's targets table. Writes bench/results.md. Not
# part of test.
bench-compare:
	bench/run-all.sh

# package: .deb and .rpm from nfpm.yaml into dist/ (nfpm from the Go module proxy).
# One build at a time in this tree (flock): test/e2e and test/differential
# each build the package, and go test runs them at once; both would write
# bin/ and dist/man under each other.
DIST    ?= dist
package:
	flock $(CURDIR)/.package.lock $(MAKE) --no-print-directory package-unlocked

package-unlocked: build
	mkdir -p dist/completions $(DIST)
	for sh in bash zsh fish; do bin/ec2init completion $$sh > dist/completions/ec2init.$$sh; done
	# The man pages' generator (cobra/doc, markdown) stays out of the boot
	# binary: its package inits cost every process at start.
	rm -rf dist/man && CGO_ENABLED=0 $(GO) run -trimpath -tags manpages -ldflags '$(LDFLAGS)' ./cmd/ec2init man dist/man && gzip -9nf dist/man/*.1
	for fmt in deb rpm; do VERSION='$(VERSION)' GOARCH='$(GOARCH)' $(NFPM) package --config nfpm.yaml --packager $$fmt --target $(DIST)/; done

clean:
	rm -rf bin dist
