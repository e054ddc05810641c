# make demo  - run a container in a private sandbox (installs what is missing)
# make test  - the whole test suite (installs what is missing)
# Both need root: bocker makes namespaces, mounts and cgroups.
SHELL := /bin/bash
PY := .venv/bin/python
# Debian/Ubuntu packages: what bocker needs on its host, and what the tests use
# (chromium: tests/test_side_by_side.py loads the side-by-side page headless).
APT_PKGS := iproute2 util-linux mount cgroup-tools busybox-static jq uuid-runtime \
            coreutils tar python3 python3-venv docker-registry openssl \
            iptables nftables procps time qemu-system-x86 linux-image-amd64 \
            podman skopeo chromium

.PHONY: deps os-deps demo test bench clean side-by-side

deps: os-deps .venv/.installed

os-deps:
	@[ "$$(id -u)" = 0 ] || { echo "make: run as root (bocker needs namespaces, mounts, cgroups)" >&2; exit 1; }
	@missing=$$(for p in $(APT_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# The project's virtual environment, from the pinned requirements.
.venv/.installed: requirements.txt
	python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

demo: deps
	$(PY) tests/sandbox.py --no-br1 -- fixtures/demo.sh

test: deps
	$(PY) -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf .venv side-by-side.html

# The bash and its Python line by line, as one page (compat/side-by-side --html);
# `compat/side-by-side run` shows a function in the terminal, `--check` checks the
# quotes (make test runs it: tests/test_side_by_side.py).
side-by-side: .venv/.installed
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
# /etc/apt/sources.list and sources.list.d/), or from BENCH_MIRROR=URL.
BENCH_TREE ?= /var/cache/bocker-bench/bookworm-minbase
BENCH_STORE ?= disk
BENCH_MIRROR ?=
bench: deps $(BENCH_TREE)
	store=$$(mktemp -d /var/tmp/bocker-bench.XXXXXX) && \
	BENCH_TREE=$(BENCH_TREE) $(PY) tests/sandbox.py \
		$$([ "$(BENCH_STORE)" = tmpfs ] || echo --store-dir $$store) -- $(PY) tests/bench.py; \
	status=$$?; rm -rf $$store; exit $$status

$(BENCH_TREE):
	command -v debootstrap > /dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
	mirror=$(or $(BENCH_MIRROR),$$(python3 tests/debian_mirror.py)) && \
	rm -rf $@.tmp && mkdir -p $(dir $@) && \
	debootstrap --variant=minbase bookworm $@.tmp "$$mirror" && mv $@.tmp $@

# The cgroup v2 tests alone, in a VM that boots a v2 only kernel (tests/vm.py),
# the guest's output on the terminal. `make test` runs them too (one outer test).
.PHONY: test-v2
test-v2: deps
	$(PY) tests/test_cgroup_v2.py
