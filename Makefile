# Every target a reader needs; `make` alone lists them.
# Steps are the folders named NN-something; NN below is their number.

STEPS := $(sort $(patsubst %/,%,$(wildcard [0-9][0-9]-*/)))
# step_dir NN -> the folder of step NN, e.g. 04 -> 04-notifycontext
step_dir = $(filter $(1)-%,$(STEPS))

.DEFAULT_GOAL := help
.PHONY: help test fmt-check vet

help: ## list the targets
	@echo "Targets (NN is a step number: $(foreach s,$(STEPS),$(firstword $(subst -, ,$(s)))))"
	@grep -hE '^[a-zA-Z%_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/%/NN/' | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

test: fmt-check vet ## the one gate, as CI runs it: gofmt, go vet, every test with -race
	go test -race ./...

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet every package
	go vet ./...

run-%: ## build step NN into bin/ and run it in the foreground; flags go in ARGS="..."
	@test -n "$(call step_dir,$*)" || { echo "no step $* (steps: $(STEPS))"; exit 2; }
	@$(run_check_$*)
	go build -o bin/$(call step_dir,$*) ./$(call step_dir,$*)
	./bin/$(call step_dir,$*) $(ARGS)

test-%: ## run step NN's tests with -race
	@test -n "$(call step_dir,$*)" || { echo "no step $* (steps: $(STEPS))"; exit 2; }
	go test -race ./$(call step_dir,$*)/...

# Step 09 is one program with two roles, each run in a terminal of its own:
# say what to type when ARGS does not start with one.
run_check_09 = case "$(firstword $(ARGS))" in web|worker) ;; *) \
	echo "step 09 has two roles; run each in a terminal of its own:"; \
	echo "  make run-09 ARGS=web"; echo "  make run-09 ARGS=worker"; \
	echo "(flags follow the role: make run-09 ARGS=\"worker -workers 2\")"; exit 2;; esac

# The step a step builds on, where that is not the one before it: 07 and 08
# are step 05 in gin's and echo's words, so their diff is against 05, not 06.
diff_base_07 := 05
diff_base_08 := 05
# 09 moves step 06's background work into a worker process of its own.
diff_base_09 := 06

diff-%: ## show what changed in main.go since the step NN builds on (the one before; 05 for 07 and 08)
	@test -n "$(call step_dir,$*)" || { echo "no step $* (steps: $(STEPS))"; exit 2; }
	@prev=$(if $(diff_base_$*),$(call step_dir,$(diff_base_$*)),$$(printf '%s\n' $(STEPS) | grep -B1 -x '$(call step_dir,$*)' | head -n 1)); \
	if [ "$$prev" = "$(call step_dir,$*)" ]; then echo "$(call step_dir,$*) is the first step"; exit 0; fi; \
	git diff --no-index -- $$prev/main.go $(call step_dir,$*)/main.go || [ $$? -eq 1 ]

.PHONY: docs transcripts
docs: ## regenerate the code, diffs and transcripts shown in every *.md (make test fails if they are stale)
	go run ./internal/docgen

transcripts: ## rerun the steps' README sessions and rewrite their testdata/*.transcript; then make docs
	DEMOTEST_UPDATE=1 go test -count=1 -run '^TestTranscripts$$' $(addprefix ./,$(STEPS))

demo-%: ## one terminal: start step NN, send a slow request, then SIGTERM, and narrate what each side saw
	@test -n "$(call step_dir,$*)" || { echo "no step $* (steps: $(STEPS))"; exit 2; }
	@go test -c -o bin/$(call step_dir,$*).test ./$(call step_dir,$*)
	@cd $(call step_dir,$*) && DEMOTEST_LIVE=1 ../bin/$(call step_dir,$*).test -test.run '^TestTranscripts$$'
	@echo "(PASS: every session went as the step's README shows it)"

.PHONY: lab
lab: ## every step under the same load and signals: rewrites docs/lab.md and its pictures (STEP=NN: one step, docs untouched)
	go run ./lab $(if $(STEP),-step $(STEP))
