# Every target a reader needs; `make` alone lists them.
# Steps are the folders named NN-something; NN below is their number.

STEPS := $(sort $(patsubst %/,%,$(wildcard [0-9][0-9]-*/)))
# step_num 04-notifycontext -> 04
step_num = $(firstword $(subst -, ,$(1)))
NUMBERS := $(foreach s,$(STEPS),$(call step_num,$(s)))
# step_dir NN -> the folder of step NN, e.g. 04 -> 04-notifycontext; the
# folder's whole name works too
step_dir = $(or $(filter $(1)-%,$(STEPS)),$(filter $(1),$(STEPS)))
# need_step stops a run-NN, test-NN, diff-NN or demo-NN whose NN is no step,
# saying what to type instead
need_step = @test -n "$(call step_dir,$*)" || { echo 'no step "$*": give its number, as in make $(@:%$*=%)04 (steps: $(NUMBERS))'; exit 2; }

.DEFAULT_GOAL := help
.PHONY: help test fmt-check vet

help: ## list the targets
	@echo "Targets (NN is a step number: $(NUMBERS))"
	@grep -hE '^[a-zA-Z0-9%_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/%/NN/' | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

# Modules of their own, so that the root go.mod stays what the steps need
# and a reader's first make test compiles less: step 10's manifest test
# pulls in k8s.io/api, step 11's browser test chromedp and its protocol
# types. They run without -race: compiling k8s.io/api with the race
# detector would cost a cold run minutes (180s against 44s) for nothing,
# and the browser test's races would be chromedp's; step 11's own tests
# run with -race in the root module.
MODULES := 10-kubernetes/deploy 11-streaming/browser

test: fmt-check vet ## the one gate, as CI runs it: gofmt, go vet, every test with -race
	@# -p 4: the tests spend their time waiting on child processes, signals
	@# and clocks, not on the CPU, so four packages at once on two cores
	@# halves the wall time (27 s against 38 s, measured). -parallel 8 for
	@# the same reason inside a package: go test runs GOMAXPROCS (2) of its
	@# parallel tests at once by default, and internal/signals' twenty
	@# two-second tests then take 15.7 s against 7.3 s (the whole suite 60 s
	@# against 51 s with -count=1, on busy cores).
	@# TOOLS_PRESENT (tools/present.sh) says which tools a test skips
	@# without are here, so that a skip is not replayed from the test cache
	@# once its tool is installed.
	@# internal/testsum is go test as it prints without -v, plus a line per
	@# skipped test and its reason at the end, cached results included.
	TOOLS_PRESENT="$$(sh tools/present.sh)" go run ./internal/testsum -race -p 4 -parallel 8 ./...
	@for m in $(MODULES); do echo "go test ./... (in $$m)"; TOOLS_PRESENT="$$(sh tools/present.sh)" go run ./internal/testsum -C $$m ./... || exit 1; done

.PHONY: prepare
prepare: ## fetch and build everything the tests and exercises use (modules, grpcurl, the race build cache), once, while you have a network
	go mod download
	@for m in $(MODULES); do (cd $$m && go mod download) || exit 1; done
	go build ./...
	go test -race -run '^$$' ./... >/dev/null
	@# internal/signals compiles every step for Windows too
	GOOS=windows go list -export $(addprefix ./,$(STEPS)) >/dev/null
	@for m in $(MODULES); do (cd $$m && go test -run '^$$' ./... >/dev/null) || exit 1; done
	go tool -modfile=tools/go.mod grpcurl -version
	@echo "prepared: make test and every exercise now need no network"

.PHONY: soak
soak: ## the suite N times in a row (N=10), then HOGGED=5 times with every core kept busy
	@sh tools/soak.sh $(or $(N),10) $(or $(HOGGED),5)

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet every package
	@# -race: vet type-checks each package against its dependencies' compiled
	@# export data, and with -race that is the very build the tests use, so a
	@# first make test compiles every dependency once, not twice (go vet alone
	@# after the race build of step 07: 8 s, against 51 s without -race).
	@# The modules below test without -race, and vet the same way.
	go vet -race ./...
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done

# A target with no number at all. Without these rules make would try its
# built-in ones (run- from run-.o) and report "no step .o".
run- test- diff- demo-:
	@echo 'which step? make $@NN, with NN one of: $(NUMBERS) (make $@04, for instance)'; exit 2

# golangci-lint is pinned in its own module, tools/go.mod, so that the root
# go.mod stays what the steps need. go tool builds it on first use (about a
# minute), then caches it. To move it: go get -modfile=tools/go.mod -tool
# github.com/golangci/golangci-lint/v2/cmd/golangci-lint@vX.Y.Z, then
# go -C tools mod tidy (not go mod tidy -modfile, which would take the
# repository's packages for the tools module's).
# Step 14's Go code is generated from its .proto by protoc with two plugins,
# protoc-gen-go and protoc-gen-go-grpc, pinned in tools/go.mod and built by
# go tool. The generated code is committed, so make test needs no protoc;
# 14-grpc's TestGeneratedCodeIsCurrent runs this same script into a
# temporary folder and fails when the committed code is stale.
.PHONY: generate
generate: ## regenerate step 14's gRPC code from 14-grpc/slow.proto (needs protoc: apt-get install protobuf-compiler libprotobuf-dev)
	sh tools/protoc.sh 14-grpc/slowpb

.PHONY: lint
lint: ## golangci-lint: govet, staticcheck, errcheck, gosec's server timeouts (.golangci.yml)
	go tool -modfile=tools/go.mod golangci-lint run ./...

# The build goes to a temporary name, then mv renames it into place: the
# path never names a half-written file (step 12 starts whatever is there on
# SIGHUP), and a file that is no Go program, such as step 12's broken
# deploy, is replaced instead of stopping go build ("not an object file").
run-%: ## build step NN into bin/ and run it in the foreground; flags go in ARGS="..."
	$(need_step)
	@$(run_check_$*)
	@# On an empty build cache the build is silent for a while: say so.
	@echo "building $(call step_dir,$*)…"
	go build -o bin/$(call step_dir,$*).new ./$(call step_dir,$*)
	mv bin/$(call step_dir,$*).new bin/$(call step_dir,$*)
	./bin/$(call step_dir,$*) $(ARGS)

# Step 15 is one program behind a real proxy: make run-15 starts HAProxy
# (PROXY=nginx: nginx) with the step's deploy/ configuration, in a
# temporary folder, in front of two replicas on loopback, and says which
# port to curl (PORT=8080 by default). ARGS go to each replica. make
# roll-15, from another terminal, or Enter in that one, replaces the
# replicas one at a time as a deploy would. These explicit rules win over
# the run-% pattern above.
run-15: ## step 15: HAProxy (PROXY=nginx: nginx) on PORT (8080) in front of two replicas; Enter there or make roll-15 rolls them
	@echo "building 15-behind-a-proxy…"
	go build -o bin/15-behind-a-proxy.new ./15-behind-a-proxy
	mv bin/15-behind-a-proxy.new bin/15-behind-a-proxy
	go run ./internal/frontproxy/run -proxy $(or $(PROXY),haproxy) -listen 127.0.0.1:$(or $(PORT),8080) -bin bin/15-behind-a-proxy -- $(or $(ARGS),-drain-delay 1s)

roll-15: ## step 15: replace the replicas of the running make run-15, one at a time, as a deploy would
	@test -f bin/run-15.pid || { echo "no make run-15 is running (bin/run-15.pid is missing): start it in another terminal first"; exit 2; }
	kill -USR1 $$(cat bin/run-15.pid)

measure-15: ## step 15: roll two replicas under a no-retry load behind each configuration of its README, rewriting 15-behind-a-proxy/testdata/measured.txt (a few minutes); then make docs
	go build -o bin/15-behind-a-proxy ./15-behind-a-proxy
	go build -o bin/run-15 ./internal/frontproxy/run
	./bin/run-15 -bin bin/15-behind-a-proxy -listen 127.0.0.1:$(or $(PORT),8080) -matrix 15-behind-a-proxy/testdata/measured.txt

test-%: ## run step NN's tests with -race
	$(need_step)
	TOOLS_PRESENT="$$(sh tools/present.sh)" go test -race ./$(call step_dir,$*)/...
	@for m in $(filter $(call step_dir,$*)/%,$(MODULES)); do echo "go test ./... (in $$m)"; (cd $$m && TOOLS_PRESENT="$$(sh ../../tools/present.sh)" go test ./...) || exit 1; done

# Step 09 is one program with two roles, each run in a terminal of its own:
# say what to type when ARGS does not start with one.
run_check_09 = case "$(firstword $(ARGS))" in web|worker|-h|-help|--help) ;; *) \
	echo "step 09 has two roles; run each in a terminal of its own:"; \
	echo "  make run-09 ARGS=web"; echo "  make run-09 ARGS=worker"; \
	echo "(flags follow the role: make run-09 ARGS=\"worker -workers 2\")"; exit 2;; esac

# The step a step builds on, where that is not the one before it: 07 and 08
# are step 05 in gin's and echo's words, so their diff is against 05, not 06;
# 10 readies step 05 for a rolling update, 11 adds its streams to it.
diff_base_07 := 05
diff_base_08 := 05
# 09 moves step 06's background work into a worker process of its own.
diff_base_09 := 06
diff_base_10 := 05
diff_base_11 := 05
diff_base_12 := 05
# 13 serves step 05 over HTTP/2 too; 14 is step 05's shutdown in grpc-go's
# words, with step 10's drain delay and step 11's streams.
diff_base_13 := 05
diff_base_14 := 05
# 15 is step 10 behind a real proxy, with step 13's h2c and POST /count.
diff_base_15 := 10
# 16 is step 10's readiness and drain delay with a stream, a consumer and a
# database behind the handlers.
diff_base_16 := 10

diff-%: ## show what changed in main.go since the step NN builds on (the one before; 05 for 07, 08, 10, 11, 12, 13 and 14; 06 for 09; 10 for 15 and 16)
	$(need_step)
	@prev=$(if $(diff_base_$(call step_num,$*)),$(call step_dir,$(diff_base_$(call step_num,$*))),$$(printf '%s\n' $(STEPS) | grep -B1 -x '$(call step_dir,$*)' | head -n 1)); \
	if [ "$$prev" = "$(call step_dir,$*)" ]; then echo "$(call step_dir,$*) is the first step"; exit 0; fi; \
	git diff --no-index -- $$prev/main.go $(call step_dir,$*)/main.go || [ $$? -eq 1 ]

.PHONY: docs transcripts
docs: ## regenerate the code, diffs and transcripts shown in every *.md (make test fails if they are stale)
	go run ./internal/docgen

transcripts: ## rerun the steps' README sessions and rewrite their testdata/*.transcript; then make docs
	DEMOTEST_UPDATE=1 go test -count=1 -run '^TestTranscripts$$' $(addprefix ./,$(STEPS))

demo-%: ## one terminal: start step NN, send a slow request, then SIGTERM, and narrate what each side saw
	$(need_step)
	@go test -c -o bin/$(call step_dir,$*).test ./$(call step_dir,$*)
	@cd $(call step_dir,$*) && DEMOTEST_LIVE=1 ../bin/$(call step_dir,$*).test -test.run '^TestTranscripts$$'
	@echo "(PASS: every session went as the step's README shows it)"

.PHONY: lab lab-docs
lab: ## every step (STEP=NN: one) under the same load and signals: prints the tables, draws bin/lab/svg/; docs/ untouched
	go run ./lab $(if $(STEP),-step $(STEP))

lab-docs: ## the lab on every step, rewriting the committed docs/lab.md and docs/lab/*.svg
	go run ./lab -write

.PHONY: bench-09
bench-09: ## step 09's BenchmarkSend, 3 runs: 202 -> "email sending" and jobs sent a second, on SQLite (and PostgreSQL with TEST_POSTGRES_URL)
	go test -run '^$$' -bench '^BenchmarkSend$$' -count 3 ./09-worker-process/
