# secure_endpoint.tetra - development and test pipeline.
#
#   make test                   everything CI runs (ansible-core $(ANSIBLE), default 2.19)
#   make test ANSIBLE=2.18      the same on ansible-core 2.18.x (reinstalls ansible-core in .venv)
#   make demo                   start the lab fleet, run playbooks/diagnose.yml, print the report path
#   make help                   list the targets
#
# Variables: PYTHON (interpreter for the venv, default python3.11), VENV (default .venv),
# ANSIBLE (ansible-core minor version, default 2.19).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON  ?= python3.11
VENV    ?= .venv
ANSIBLE ?= 2.19
ANSIBLE_NEXT := $(shell echo '$(ANSIBLE)' | awk -F. '{ printf "%d.%d", $$1, $$2 + 1 }')

NAMESPACE  := secure_endpoint
NAME       := tetra
VERSION    := $(shell sed -n 's/^version: *//p' galaxy.yml)
BUILD      := $(CURDIR)/.build
COLL_ROOT  := $(BUILD)/collections
COLL_DIR   := $(COLL_ROOT)/ansible_collections/$(NAMESPACE)/$(NAME)
TARBALL    := $(BUILD)/$(NAMESPACE)-$(NAME)-$(VERSION).tar.gz
VBIN       := $(abspath $(VENV))/bin
STAMP      := $(VENV)/.installed-ansible-core-$(ANSIBLE)
FLEET      ?= tests/lab/fleets/catalog.yml
LAB_INVENTORY ?= $(BUILD)/lab.ini

# Tools from the venv first; collections from the staged copy; nothing from the user's config.
export PATH := $(VBIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export ANSIBLE_NOCOLOR := 1
export NO_COLOR := 1
export PYTHONDONTWRITEBYTECODE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Steps of `make test`, fastest first; the first failure stops the run.
TEST_STEPS ?= pscheck ruff typing units-ansible-test transports changelog-lint lint docs-lint sanity build importer integration lab-tests

.PHONY: help venv collection ruff typing units units-ansible-test transports pscheck sanity lint docs-lint changelog-lint build install-test \
        importer ee integration lab-tests test demo lab bench clean

help:
	@echo 'Targets:'
	@echo '  venv            create $(VENV) ($(PYTHON)) with ansible-core $(ANSIBLE).x and all test tools'
	@echo '  collection      stage the working tree at $(COLL_DIR)'
	@echo '  pscheck         PowerShell 5.1 static check of every tracked *.ps1/*.psm1/*.psd1'
	@echo '  ruff            ruff check and pycodestyle (pyproject.toml: line length 160 and the ignores of the sanity pep8 test)'
	@echo '  typing          mypy on plugins/ and tests/lab (settings in pyproject.toml)'
	@echo '  units           pytest tests/unit (quick, on this checkout)'
	@echo '  units-ansible-test  ansible-test units --venv on a staged copy (tests/unit/requirements.txt)'
	@echo '  transports      transport contract tests under ansible-core $(TRANSPORT_VERSIONS) (venvs in .build/transports)'
	@echo '  changelog-lint  antsibull-changelog lint (fragments and changelog.yaml)'
	@echo '  lint            ansible-lint --offline --profile production'
	@echo '  docs-lint       antsibull-docs lint-collection-docs --plugin-docs'
	@echo '  sanity          ansible-test sanity --venv (no ignore files)'
	@echo '  build           ansible-galaxy collection build + install of the tarball into a temp path'
	@echo '  importer        galaxy-importer on the tarball (no container)'
	@echo '  ee              execution environment build context (ansible-builder create) in .build/ee/context'
	@echo '  integration     pytest tests/integration (playbooks against the lab)'
	@echo '  lab-tests       pytest tests/lab/tests'
	@echo '  test            all of the above: $(TEST_STEPS)'
	@echo '  demo            start the lab fleet, run playbooks/diagnose.yml, print the report path'
	@echo '  bench           side-by-side benchmarks against the lab (one round trip vs four, concurrent vs sequential, controller CPU, 500 and $(BENCH_FLEET) hosts, slices)'
	@echo '  lab             serve the lab fleet $(FLEET) (inventory at $(LAB_INVENTORY))'
	@echo '  clean           remove .build, tests/output and caches (keeps $(VENV))'

# ---------------------------------------------------------------------------------------------
# environment
venv: $(STAMP)

$(STAMP): requirements.txt tests/requirements.txt
	@test -x $(VBIN)/python || $(PYTHON) -m venv $(VENV)
	$(VBIN)/python -m pip install --upgrade pip
	$(VBIN)/python -m pip install 'ansible-core>=$(ANSIBLE),<$(ANSIBLE_NEXT)' -r tests/requirements.txt
	$(VBIN)/python -m pip check
	$(VBIN)/python tools/ansible_test_offline.py
	rm -f $(VENV)/.installed-ansible-core-*
	@$(VBIN)/ansible --version | head -1
	touch $@

# ansible-test and antsibull-docs need the collection at .../ansible_collections/<ns>/<name>.
# A symlink is not enough for ansible-test (it resolves the real path), so stage a copy of the
# working tree (tracked and untracked files, minus what .gitignore excludes), refreshed each run.
# The copy gets its own empty git repository: ansible-test lists files with git from the nearest
# .git, and the checkout's .git would report everything under .build/ as ignored.
# sanity and docs-lint stage their own copies so that parallel runs do not pull the tree away.
stage = rm -rf $(1) && mkdir -p $(1) \
	&& git ls-files -z --cached --others --exclude-standard \
	   | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $(1) \
	&& git -C $(1) init -q && echo "staged $(NAMESPACE).$(NAME) at $(1)"
SANITY_DIR := $(BUILD)/sanity/ansible_collections/$(NAMESPACE)/$(NAME)
UNITS_DIR  := $(BUILD)/units/ansible_collections/$(NAMESPACE)/$(NAME)
DOCS_DIR   := $(BUILD)/docs-lint/ansible_collections/$(NAMESPACE)/$(NAME)

collection: $(STAMP)
	@$(call stage,$(COLL_DIR))

# ---------------------------------------------------------------------------------------------
# checks
pscheck: $(STAMP)
	$(VBIN)/python tools/pscheck.py --entries files/entries.json $$(git ls-files --cached --others --exclude-standard -- '*.ps1' '*.psm1' '*.psd1')

# ruff, plus pycodestyle for the continuation-line and blank-line rules ruff does not implement, with the
# settings of ansible-test's pep8 test (so `make sanity` finds nothing new there).
PEP8_IGNORE := $(shell sed -n 's/^ignore = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '" ' | sed 's/$$/,W503,W504,E704/')
ruff: $(STAMP)
	$(VBIN)/ruff check --no-cache .
	$(VBIN)/python -m pycodestyle --max-line-length 160 --ignore $(PEP8_IGNORE) --exclude '.build,.venv*,tests/output' .

# mypy resolves the collection's own imports (ansible_collections.secure_endpoint.tetra...) through a
# symlink to this checkout, never through a staged copy, so it always checks the working tree.
MYPY_ROOT := $(BUILD)/mypy
typing: $(STAMP)
	@mkdir -p $(MYPY_ROOT)/ansible_collections/$(NAMESPACE) && ln -sfn $(CURDIR) $(MYPY_ROOT)/ansible_collections/$(NAMESPACE)/$(NAME)
	MYPYPATH=$(MYPY_ROOT):$(CURDIR) $(VBIN)/python -m mypy -p ansible_collections.$(NAMESPACE).$(NAME).plugins -p tests.lab

units: $(STAMP)
	$(VBIN)/python -m pytest tests/unit -q

# The standard entry point: ansible-test units in its own virtual environment, with the packages of
# tests/unit/requirements.txt, on a staged copy (as Galaxy users and CI of other collections run it).
units-ansible-test: $(STAMP)
	@$(call stage,$(UNITS_DIR))
	$(VBIN)/python tools/ansible_test_offline.py
	cd $(UNITS_DIR) && $(VBIN)/ansible-test units --venv --python $$($(VBIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])') --color no

# The transport contract tests (winrm, psrp, ssh connection plugins) under every supported
# ansible-core: $(ANSIBLE) in $(VENV), the others in small venvs under .build/transports/<version>
# (2.18/2.19 on $(PYTHON), 2.20+ on python3.12), reused while their stamp file exists.
TRANSPORT_VERSIONS ?= 2.18 2.19 2.20 2.21
TRANSPORT_TESTS    := tests/unit/plugins/plugin_utils/test__remote_transports.py
TRANSPORT_PACKAGES := pywinrm pypsrp pyspnego requests-ntlm pytest pyyaml xmltodict jmespath

transports: $(STAMP)
	@py312=''; for p in "$$(command -v python3.12 || true)" /root/.pyenv/versions/3.12*/bin/python3.12; do \
	  if [ -n "$$p" ] && "$$p" -V >/dev/null 2>&1; then py312=$$p; break; fi; done; \
	failed=(); \
	for ver in $(TRANSPORT_VERSIONS); do \
	  next=$$(echo $$ver | awk -F. '{ printf "%d.%d", $$1, $$2 + 1 }'); \
	  if [ "$$ver" = '$(ANSIBLE)' ]; then python=$(VBIN)/python; \
	  else \
	    case $$ver in 2.18|2.19) base=$(PYTHON) ;; *) base=$$py312 ;; esac; \
	    if [ -z "$$base" ]; then echo "SKIP transports ansible-core $$ver: python3.12 not found"; continue; fi; \
	    dir=$(BUILD)/transports/$$ver; python=$$dir/bin/python; stamp=$$dir/.installed; \
	    if [ ! -f $$stamp ] || ! $$python -c 'import ansible' 2>/dev/null; then \
	      echo "transports: creating $$dir (ansible-core>=$$ver,<$$next, $$($$base -V))"; \
	      rm -rf $$dir; $$base -m venv $$dir; \
	      $$python -m pip install -q "ansible-core>=$$ver,<$$next" $(TRANSPORT_PACKAGES) > $$dir.pip.log 2>&1 \
	        || { cat $$dir.pip.log; echo "transports ansible-core $$ver: FAILED to install (log $$dir.pip.log)"; failed+=($$ver); continue; }; \
	      touch $$stamp; \
	    fi; \
	  fi; \
	  core=$$($$python -c 'from ansible.release import __version__; print(__version__)'); \
	  rc=0; out=$$($$python -m pytest $(TRANSPORT_TESTS) -q -p no:cacheprovider 2>&1) || rc=$$?; \
	  if [ $$rc -ne 0 ]; then echo "$$out"; failed+=($$ver); fi; \
	  echo "transports ansible-core $$core ($$($$python -V)): $$(echo "$$out" | tail -1)"; \
	done; \
	if [ $${#failed[@]} -gt 0 ]; then echo "transports: FAILED on ansible-core $${failed[*]}"; exit 1; fi

changelog-lint: $(STAMP)
	$(VBIN)/antsibull-changelog lint
	$(VBIN)/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

lint: $(STAMP)
	$(VBIN)/ansible-lint --offline --profile production

docs-lint: $(STAMP)
	@$(call stage,$(DOCS_DIR))
	cd $(DOCS_DIR) && $(VBIN)/antsibull-docs lint-collection-docs --plugin-docs .

sanity: $(STAMP)
	@$(call stage,$(SANITY_DIR))
	$(VBIN)/python tools/ansible_test_offline.py
	@if ls tests/sanity/ignore-*.txt .ansible-lint-ignore >/dev/null 2>&1; then \
	  echo 'sanity: ignore files are not allowed (tests/sanity/ignore-*.txt, .ansible-lint-ignore): fix the code instead'; exit 1; fi
	cd $(SANITY_DIR) && $(VBIN)/ansible-test sanity --venv --python $$($(VBIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])') --color no

build: $(STAMP)
	@mkdir -p $(BUILD)
	$(VBIN)/ansible-galaxy collection build --force --output-path $(BUILD) .
	@rm -rf $(BUILD)/install-test
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/install-test \
	  $(VBIN)/ansible-galaxy collection install --force --offline -p $(BUILD)/install-test $(TARBALL)
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/install-test $(VBIN)/ansible-galaxy collection list $(NAMESPACE).$(NAME) \
	  | grep -E '^$(NAMESPACE)\.$(NAME) +$(VERSION)'
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/install-test $(VBIN)/ansible-doc -l $(NAMESPACE).$(NAME) >/dev/null
	@if tar tzf $(TARBALL) | grep -E '^(tests|tools)/|(^|/)(conftest|test_[^/]*)\.py$$'; then \
	  echo 'build: the tarball carries the test files above (galaxy.yml build_ignore)'; exit 1; fi
	@echo "build: $$(tar tzf $(TARBALL) | grep -vc '/$$') files in $(TARBALL), no tests, lab, bench or tools"
	@mkdir -p $(BUILD)/ee && cp $(TARBALL) $(BUILD)/ee/$(NAMESPACE)-$(NAME).tar.gz

# The execution environment's build context (no container engine needed); the version comes from galaxy.yml.
ee: build
	$(VBIN)/ansible-builder create -f execution-environment.yml -c $(BUILD)/ee/context
	@echo "ee: build the image with: ansible-builder build -f execution-environment.yml -t secure-endpoint-tetra-ee:$(VERSION)"

# galaxy-importer as Galaxy/Automation Hub run it on upload, without a container: see
# tests/galaxy-importer.cfg. Any ERROR or WARNING it prints fails the target.
importer: build
	@cd $(BUILD) && env -u ANSIBLE_COLLECTIONS_SCAN_SYS_PATH GALAXY_IMPORTER_CONFIG=$(CURDIR)/tests/galaxy-importer.cfg \
	  $(VBIN)/python -m galaxy_importer.main $(TARBALL) 2>&1 | tee $(BUILD)/importer.log
	@if grep -E '^(ERROR|WARNING|CRITICAL)' $(BUILD)/importer.log; then \
	  echo 'importer: galaxy-importer reported the problems above'; exit 1; fi
	@grep -q 'Importer processing completed successfully' $(BUILD)/importer.log

integration: collection
	$(VBIN)/python -m pytest tests/integration -q

lab-tests: $(STAMP)
	$(VBIN)/python -m pytest tests/lab/tests -q

# Runs the steps in order, stops at the first failure and prints a summary with timings either
# way; the last line reads "steps: N passed, N failed, N skipped". Logs: .build/steps/<step>.log.
test: $(STAMP)
	@mkdir -p $(BUILD)/steps; summary=(); failed=''; passed=0; skipped=0; \
	for step in $(TEST_STEPS); do \
	  echo; echo "==================== $$step ===================="; \
	  start=$$(date +%s); rc=0; \
	  $(MAKE) --no-print-directory $$step ANSIBLE=$(ANSIBLE) VENV=$(VENV) PYTHON=$(PYTHON) 2>&1 \
	    | tee $(BUILD)/steps/$$step.log || rc=$$?; \
	  secs=$$(( $$(date +%s) - start )); \
	  if [ $$rc -ne 0 ]; then summary+=("  FAIL  $$step ($${secs}s, exit $$rc, log .build/steps/$$step.log)"); failed=$$step; break; \
	  elif grep -q '^SKIP ' $(BUILD)/steps/$$step.log; then summary+=("  skip  $$step ($$(grep -m1 '^SKIP ' $(BUILD)/steps/$$step.log))"); skipped=$$((skipped + 1)); \
	  else summary+=("  ok    $$step ($${secs}s)"); passed=$$((passed + 1)); fi; \
	done; \
	echo; echo "==================== summary: ansible-core $$($(VBIN)/python -c 'import ansible; print(ansible.__version__)'), $$($(VBIN)/python -V) ===================="; \
	printf '%s\n' "$${summary[@]}"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED at $$failed"; echo "steps: $$passed passed, 1 failed, $$skipped skipped"; exit 1; fi; \
	echo "steps: $$passed passed, 0 failed, $$skipped skipped"

# ---------------------------------------------------------------------------------------------
# lab and demo
lab: collection
	$(VBIN)/python -m tests.lab serve --fleet $(FLEET) --inventory $(LAB_INVENTORY)

# Starts the lab fleet in the background, waits for its inventory, runs diagnose.yml against it
# and prints where the report is. The lab is stopped on exit, also on failure or Ctrl-C.
demo: collection
	@rm -f $(LAB_INVENTORY); mkdir -p $(BUILD)/demo; \
	$(VBIN)/python -m tests.lab serve --fleet $(FLEET) --inventory $(LAB_INVENTORY) > $(BUILD)/demo/lab.log 2>&1 & \
	lab=$$!; trap 'kill $$lab 2>/dev/null; wait $$lab 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 100); do [ -s $(LAB_INVENTORY) ] && break; \
	  kill -0 $$lab 2>/dev/null || { cat $(BUILD)/demo/lab.log; echo 'demo: the lab did not start'; exit 1; }; sleep 0.2; done; \
	[ -s $(LAB_INVENTORY) ] || { cat $(BUILD)/demo/lab.log; echo 'demo: no lab inventory after 20s'; exit 1; }; \
	ANSIBLE_CALLBACKS_ENABLED=secure_endpoint.tetra.tetra_summary ANSIBLE_FORKS=25 \
	  $(VBIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/diagnose.yml \
	  -e tetra_report_dir=$(BUILD)/demo -e tetra_evidence_dir=$(BUILD)/demo/evidence -e tetra_latest_fetch=false; \
	echo; echo "demo: report files in $(BUILD)/demo:"; ls -1 $(BUILD)/demo | grep -E '^report' | sed 's|^|  $(BUILD)/demo/|'; \
	echo "demo: open the HTML report: file://$(BUILD)/demo/report.html"

# Side-by-side benchmarks against the lab (not part of `make test`): see tests/bench/bench_diagnose.py.
# BENCH_FLEET endpoints in one lab process: one ansible-playbook, then BENCH_SLICES parallel ones merged into one report.
BENCH_FLEET  ?= 2000
# BENCH_REF (a git ref, optional): also run that version's diagnose.yml beside this tree's (controller CPU).
BENCH_SLICES ?= 4
BENCH_REF    ?=
bench: collection
	$(VBIN)/python -m tests.bench.bench_diagnose --repeat 3 --scale --controller --fleet $(BENCH_FLEET) --slices $(BENCH_SLICES) \
	  $(if $(BENCH_REF),--compare-ref $(BENCH_REF))

clean:
	rm -rf $(BUILD) tests/output .pytest_cache importer_result.json
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
