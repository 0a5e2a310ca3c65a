# crs: make build | test | demo | bench | fuzz
GO ?= go
# make test fuzzes a fixed number of inputs, not for a time: on a busy
# machine a timed run can end with "context deadline exceeded" while a
# worker is slow to stop (it did here beside a CPU hog); a count just
# takes longer. The RDB decoder reads files from anywhere: it gets more,
# seeded with the RDB files of every server version (rdb/testdata).
TESTFUZZ ?= 60000x
RDBTESTFUZZ ?= 300000x
# The payload encoder's fuzz restores each input into a real server.
ENCODEFUZZ ?= 20000x
FUZZTIME ?= 10s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The tests' runner: a line per test as it ends (which passed, which
# failed and where), and the count at the end.
GOTESTSUM ?= $(GO) run gotest.tools/gotestsum@v1.13.0 --format testname
# The packages of goroutines (the sync, the replication link, the
# records' hand-over, the load), tested again under the race detector.
RACE_PKGS ?= ./records ./livesync ./source/repl ./load ./target

.PHONY: build test demo bench fuzz deps clean man install chaos

# Where make build puts the binary; make install copies it to PREFIX.
BINDIR ?= bin
PREFIX ?= /usr/local
# make build TAGS=nogcs leaves gs:// out (about 25 MB less resident memory
# in every crs process); TAGS=noazure azblob://.
TAGS ?=

# A static binary (no C library needed, so a copy runs on any Linux of
# the same architecture), named crs, crsdump and crsload.
build:
	@echo "building $(BINDIR)/crs (the first build fetches and compiles its Go modules: a minute or more)"
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -tags '$(TAGS)' -o $(BINDIR)/crs .
	ln -f $(BINDIR)/crs $(BINDIR)/crsdump
	ln -f $(BINDIR)/crs $(BINDIR)/crsload

# The manual pages, section 1, from the CLI's own definitions.
man: build
	$(BINDIR)/crs man > $(BINDIR)/crs.1
	$(BINDIR)/crs man crsdump > $(BINDIR)/crsdump.1
	$(BINDIR)/crs man crsload > $(BINDIR)/crsload.1

# crs, crsdump and crsload (links to crs) in PREFIX/bin, their manual
# pages in PREFIX/share/man/man1.
install: man
	install -d $(PREFIX)/bin $(PREFIX)/share/man/man1
	install -m 0755 $(BINDIR)/crs $(PREFIX)/bin/crs
	ln -sf crs $(PREFIX)/bin/crsdump
	ln -sf crs $(PREFIX)/bin/crsload
	install -m 0644 $(BINDIR)/crs.1 $(BINDIR)/crsdump.1 $(BINDIR)/crsload.1 $(PREFIX)/share/man/man1/

deps:
	@./scripts/deps.sh

# The test command of the README and of CI. Tests start their own
# redis-servers on free loopback ports; with CI set, a missing
# redis-server fails them instead of skipping. The end-to-end tests are
# packages of their own (the root's, e2e/…), which go test runs side by
# side; each has its timeout set here, well past what it takes on a busy
# 2-core machine.
test:
	@./scripts/deps.sh s3
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	@./scripts/tracked.sh
	$(GO) vet ./...
	$(GO) build -tags nogcs,noazure -o /dev/null .
	$(GO) run $(STATICCHECK) ./...
	$(GO) test -run=NONE -fuzz=FuzzReader -fuzztime=$(TESTFUZZ) -fuzzminimizetime=100x ./format
	$(GO) test -run=NONE -fuzz=FuzzDecoder -fuzztime=$(RDBTESTFUZZ) -fuzzminimizetime=100x ./rdb
	$(GO) test -run=NONE -fuzz=FuzzSource -fuzztime=$(TESTFUZZ) -fuzzminimizetime=100x ./source/redisdump
	$(GO) test -run=NONE -fuzz=FuzzEncode -fuzztime=$(ENCODEFUZZ) -fuzzminimizetime=100x ./internal/dumppayload
	$(GOTESTSUM) -- -count=1 -timeout 15m -race $(RACE_PKGS)
	$(GOTESTSUM) -- -count=1 -timeout 30m ./...

# Two throwaway servers, a guide-shaped keyspace, dump, load, counts.
demo: deps build
	@echo "starting the demo (go run compiles it first)"
	$(GO) run ./internal/cmd/demo -bin $(BINDIR)

# Go benchmarks of the format, then the tools on throwaway servers: peak
# RSS while moving huge keys (make bench SCALE=0.1 for a quick run).
SCALE ?= 1
bench: deps build
	$(GO) test -run=NONE -bench=. -benchmem ./format
	$(GO) run ./internal/cmd/bench -bin bin -scale $(SCALE)

# The fault campaign of crs sync (e2e/sync/chaos_test.go, build tag
# chaos): each case a fault at a phase, then the same sync again to a
# target equal to the source. A row of its table per case in the log.
chaos: deps
	$(GOTESTSUM) -- -count=1 -timeout 30m -tags chaos -run TestChaos -v ./e2e/sync

# A longer fuzz run: make fuzz FUZZTIME=10m
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzReader -fuzztime=$(FUZZTIME) -fuzzminimizetime=10s ./format
	$(GO) test -run=NONE -fuzz=FuzzDecoder -fuzztime=$(FUZZTIME) -fuzzminimizetime=10s ./rdb
	$(GO) test -run=NONE -fuzz=FuzzSource -fuzztime=$(FUZZTIME) -fuzzminimizetime=10s ./source/redisdump
	$(GO) test -run=NONE -fuzz=FuzzEncode -fuzztime=$(FUZZTIME) -fuzzminimizetime=10s ./internal/dumppayload

clean:
	rm -rf bin
