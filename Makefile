# make shell - a shell in a private sandbox with a busybox image ready, for
#              learning (installs only what bocker needs)
# make shell-join - a second shell in that sandbox, from another terminal
# make demo  - run a container in a private sandbox (installs what is missing)
# make labs  - the article's experiments (labs/), each in a private sandbox
# make test  - the whole test suite (installs what is missing)
# All need root: bocker makes namespaces, mounts and cgroups.
SHELL := /bin/bash
PY := .venv/bin/python
# Debian/Ubuntu packages. RUN_PKGS: what bocker needs on its host (and the labs:
# busybox's ping, cgroup-tools, ipcmk). TEST_PKGS: what the demo and the tests
# add (compat/host-setup's NAT, a registry for pull, QEMU and a kernel for the
# cgroup v2 VM, podman, skopeo, docker.io and runc for images in engines,
# tmux for a real terminal, chromium for the side-by-side page).
RUN_PKGS := iproute2 util-linux mount cgroup-tools busybox-static jq uuid-runtime libseccomp2 \
            coreutils tar python3 python3-venv procps
TEST_PKGS := docker-registry openssl iptables nftables time qemu-system-x86 gcc libc6-dev \
             linux-image-amd64 podman skopeo docker.io runc tmux chromium
APT_PKGS := $(RUN_PKGS) $(TEST_PKGS)

.PHONY: deps run-deps os-deps demo test bench clean side-by-side shell shell-join labs

deps: os-deps .venv/.installed

# What `make shell` and `make labs` need: bocker's own packages and venv.
run-deps:
	@$(MAKE) --no-print-directory os-deps APT_PKGS="$(RUN_PKGS)"
	@$(MAKE) --no-print-directory .venv/.run-installed

# Packages are installed with a policy-rc.d (invoke-rc.d(8)) that starts no
# service: docker.io's daemon, started by its install, would make docker0 and
# NAT rules on the host; the tests start a dockerd of their own in the sandbox.
os-deps:
	@[ "$$(id -u)" = 0 ] || { echo "make: run as root (bocker needs namespaces, mounts, cgroups)" >&2; exit 1; }
	@missing=$$(for p in $(APT_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=/usr/sbin/policy-rc.d; \
			printf '#!/bin/sh\nexit 101\n' > $$guard && chmod 755 $$guard; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		status=$$?; [ -z "$$guard" ] || rm -f $$guard; exit $$status; \
	fi

# The project's virtual environment, from the pinned requirements: bocker's
# own (requirements-run.txt), then the tests' (requirements.txt).
.venv/.run-installed: requirements-run.txt
	[ -x $(PY) ] || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-run.txt
	touch $@

.venv/.installed: requirements.txt .venv/.run-installed
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# A learner's door: a shell in a fresh sandbox (tests/sandbox.py: br1, a private
# store, network, mounts and cgroups), with a busybox image made by `bocker.sh
# init` (fixtures/shell.sh says what to try). `exit` ends it and the sandbox,
# with every container, link, mount and cgroup made in it.
shell: run-deps
	$(PY) tests/sandbox.py -- fixtures/shell.sh

# A second shell in the sandbox `make shell` opened (from another terminal):
# its network, store and cgroups, bocker.sh on PATH and $IMG set. With several
# open: make shell-join HOLDER=PID (the banner of each says its PID).
HOLDER ?=
shell-join:
	@$(PY) tests/sandbox.py --join $(HOLDER) -- fixtures/shell.sh --joined

# The article's experiments (labs/NN-*.sh), each in a sandbox of its own;
# tests/test_labs.py checks their output against fixtures/labs/.
labs: run-deps
	@for lab in labs/[0-9][0-9]-*.sh; do \
		printf '\n\033[1m== %s\033[0m\n' "$$lab"; \
		$(PY) tests/sandbox.py --no-br1 -- $$lab || exit 1; \
	done

demo: deps
	$(PY) tests/sandbox.py --no-br1 -- fixtures/demo.sh

test: deps
	$(PY) -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf .venv side-by-side.html

# The bash and its Python line by line, as one page (compat/side-by-side --html);
# `compat/side-by-side run` shows a function in the terminal, `--check` checks the
# quotes (make test runs it: tests/test_side_by_side.py).
side-by-side: .venv/.run-installed
	$(PY) compat/side-by-side --html side-by-side.html

# Record fixtures/golden/ again: each scenario of tests/golden.py from the
# reference (BOCKER_REFERENCE), and bocker.py's output where a scenario declares
# a DIVERGENCES.md row. Review the diff (git diff fixtures/golden) before committing.
.PHONY: golden
golden: deps
	$(PY) tests/golden.py --record

# The benchmark: bocker.py against the reference, interleaved, in one sandbox.
# The store is a directory on disk, as on a real host, not the tests' tmpfs
# (BENCH_STORE=tmpfs: a tmpfs). The distribution tree (debootstrap minbase
# bookworm, about 6,800 entries) is made once, outside the project, in BENCH_TREE,
# from the Debian archive this host's apt uses (tests/debian_mirror.py reads
# /etc/apt/sources.list and sources.list.d/), or from BENCH_MIRROR=URL
# (debootstrap mounts /proc and /sys in it while it works: in a mount namespace
# of its own, so they never show on the host). The 40,000-entry image is made by
# tests/bench.py itself beside it (BENCH_TREE40), once.
BENCH_TREE ?= /var/cache/bocker-bench/bookworm-minbase
BENCH_STORE ?= disk
BENCH_MIRROR ?=
bench: deps $(BENCH_TREE)
	store=$$(mktemp -d /var/tmp/bocker-bench.XXXXXX) && \
	BENCH_TREE=$(BENCH_TREE) $(PY) tests/sandbox.py --engines \
		$$([ "$(BENCH_STORE)" = tmpfs ] || echo --store-dir $$store) -- $(PY) tests/bench.py; \
	status=$$?; rm -rf $$store; exit $$status

$(BENCH_TREE):
	command -v debootstrap > /dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
	mirror=$(or $(BENCH_MIRROR),$$(python3 tests/debian_mirror.py)) && \
	rm -rf $@.tmp && mkdir -p $(dir $@) && \
	unshare --mount --propagation private \
		debootstrap --variant=minbase bookworm $@.tmp "$$mirror" && mv $@.tmp $@

# The cgroup v2 tests alone, in a VM that boots a v2 only kernel (tests/vm.py),
# the guest's output on the terminal. `make test` runs them too (one outer test).
.PHONY: test-v2
test-v2: deps
	$(PY) tests/test_cgroup_v2.py
