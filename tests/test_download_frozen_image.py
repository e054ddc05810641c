"""Tests of compat/download-frozen-image-v2 against a real local registry.

Needs root, `unshare`, `ip`, Debian's docker-registry, openssl and busybox-static.
Every networked test runs its registry, token server and the downloader inside a
fresh private network namespace (`unshare --net`), so nothing can reach beyond it:
the test calls run_scenario(), which re-runs this file as a script in the namespace
(`python test_download_frozen_image.py SCENARIO WORKDIR`); the scenario brings `lo`
up, starts the registry, pushes images, runs the downloader and prints JSON facts
(exit status, output, what the servers saw). The test then asserts on those facts
and on the files the downloader left in WORKDIR (the filesystem is shared).
"""

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import pty
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import registry  # noqa: E402  (tests/registry.py)

TOOL = HERE.parent / "compat" / "download-frozen-image-v2"
PORT = 5000
NAME = "download-frozen-image-v2"
DONE = "Download of images into '{}' complete.\n"

if __name__ != "__main__":
    import pytest

    @pytest.fixture(autouse=True)
    def _needs_root_and_registry():
        """Needs root, unshare and Debian's docker-registry: `make test` installs
        them; a missing one fails the test instead of hiding it."""
        assert os.geteuid() == 0, "needs root"
        assert shutil.which("unshare"), "needs unshare (util-linux)"
        assert os.path.exists(registry.REGISTRY_BIN), \
            "needs docker-registry (apt-get install docker-registry)"


# =========================================================================== in the netns

def run_tool(url, target, *images, tty=False):
    """Run the downloader with BOCKER_REGISTRY=url; stderr on a pty when tty=True."""
    env = dict(os.environ, BOCKER_REGISTRY=url)
    argv = [str(TOOL), str(target), *images]
    if not tty:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
    master, slave = pty.openpty()
    chunks = []
    reader = threading.Thread(target=_drain, args=(master, chunks))
    reader.start()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=slave, text=True,
                          timeout=60)
    os.close(slave)
    reader.join()
    os.close(master)
    return {"rc": proc.returncode, "stdout": proc.stdout,
            "stderr": b"".join(chunks).decode(errors="replace")}


def _drain(fd, chunks):
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:          # EIO once the slave side is closed everywhere
            return
        if not data:
            return
        chunks.append(data)


def small_layer(text, compress=True, **extra):
    return registry.make_layer({"etc/": None, "etc/which": text, **extra}, compress)


def other_arch():
    return "arm64" if registry.machine_arch() != "arm64" else "amd64"


def scenario_schema2(work):
    """Docker schema 2: busybox base (gzip) + a plain-tar layer with whiteouts."""
    base = registry.busybox_layer(compress=True)
    top = registry.make_layer({
        "etc/": None,
        "etc/hello": "hello from layer 2\n",
        registry.whiteout("etc/group"): b"",
        registry.opaque_whiteout("tmp"): b"",
    }, compress=False)
    with registry.start_registry(work / "reg", PORT) as reg:
        pushed = registry.push_image(reg.url, "test/busybox", "1.0", [base, top])
        run = run_tool(reg.url, work / "out", "test/busybox:1.0")
    return {"run": run, "layers": [d["digest"] for d in pushed.layers],
            "media": [d["mediaType"] for d in pushed.layers],
            "config": pushed.config_digest}


def scenario_oci(work):
    """OCI image manifest with one gzip and one uncompressed layer."""
    layers = [small_layer("oci base\n", compress=True),
              registry.make_layer({"etc/": None, "etc/oci": "top\n"}, compress=False)]
    with registry.start_registry(work / "reg", PORT) as reg:
        pushed = registry.push_image(reg.url, "oci/img", "v1", layers, media="oci")
        run = run_tool(reg.url, work / "out", "oci/img:v1")
    return {"run": run, "layers": [d["digest"] for d in pushed.layers],
            "media": [d["mediaType"] for d in pushed.layers],
            "config": pushed.config_digest, "manifest_media": pushed.media_type}


def scenario_index(work, media):
    """A manifest list / index with a windows image of our arch, another linux arch,
    and ours last: only the last one may be chosen."""
    ours, arch = registry.machine_arch(), other_arch()
    with registry.start_registry(work / "reg", PORT) as reg:
        def image(text, arch_, os_name="linux"):
            layer = small_layer(text)
            config = registry.image_config([layer], arch=arch_, os_name=os_name)
            return registry.push_image(reg.url, "multi/arch", None, [layer], config, media)
        windows = image("windows\n", ours, "windows")
        other = image(f"{arch}\n", arch)
        mine = image(f"{ours}\n", ours)
        registry.push_index(reg.url, "multi/arch", "latest", [
            (windows, {"os": "windows", "architecture": ours}),
            (other, {"os": "linux", "architecture": arch}),
            (mine, {"os": "linux", "architecture": ours}),
        ], media)
        run = run_tool(reg.url, work / "out", "multi/arch")
    return {"run": run, "mine": mine.layers[0]["digest"], "arch": ours,
            "others": [windows.layers[0]["digest"], other.layers[0]["digest"]]}


def scenario_index_docker(work):
    return scenario_index(work, "docker")


def scenario_index_oci(work):
    return scenario_index(work, "oci")


def scenario_no_platform(work):
    """An index offering only windows/<our arch> and linux/s390x-or-riscv64."""
    foreign = "s390x" if registry.machine_arch() != "s390x" else "riscv64"
    ours = registry.machine_arch()
    with registry.start_registry(work / "reg", PORT) as reg:
        a = registry.push_image(reg.url, "foreign/img", None, [small_layer("a\n")],
                                media="oci")
        b = registry.push_image(reg.url, "foreign/img", None, [small_layer("b\n")],
                                media="oci")
        registry.push_index(reg.url, "foreign/img", "latest", [
            (a, {"os": "windows", "architecture": ours}),
            (b, {"os": "linux", "architecture": foreign}),
        ], "oci")
        run = run_tool(reg.url, work / "out", "foreign/img:latest")
    return {"run": run, "foreign": foreign, "ours": ours}


def scenario_corrupt(work):
    """Layer 2 damaged in storage (same size, wrong bytes); DIR exists beforehand."""
    with registry.start_registry(work / "reg", PORT) as reg:
        pushed = registry.push_image(reg.url, "bad/img", "latest",
                                     [small_layer("one\n"), small_layer("two\n")])
        registry.corrupt_blob(reg, pushed.layers[1]["digest"])
        run = run_tool(reg.url, work / "out", "bad/img")
    return {"run": run, "bad": pushed.layers[1]["digest"]}


def scenario_truncated(work):
    """Stored layer cut in half: the registry serves fewer bytes than the manifest says."""
    with registry.start_registry(work / "reg", PORT) as reg:
        pushed = registry.push_image(reg.url, "bad/img", "latest", [small_layer("one\n")])
        registry.corrupt_blob(reg, pushed.layers[0]["digest"], truncate=True)
        run = run_tool(reg.url, work / "out", "bad/img")
    return {"run": run, "bad": pushed.layers[0]["digest"]}


def scenario_dropped(work):
    """Storage (behind a redirect) announces the full length, then hangs up halfway."""
    with registry.start_registry(work / "reg", PORT, redirect=True) as reg:
        pushed = registry.push_image(reg.url, "bad/img", "latest",
                                     [registry.busybox_layer()])
        reg.blob_server.short_body = True
        run = run_tool(reg.url, work / "out", "bad/img")
    return {"run": run, "bad": pushed.config_digest}


def scenario_unknown(work):
    with registry.start_registry(work / "reg", PORT) as reg:
        registry.push_image(reg.url, "known/img", "1", [small_layer("x\n")])
        tag = run_tool(reg.url, work / "out", "known/img:2")
        repo = run_tool(reg.url, work / "out", "nobody/here:1")
    return {"tag": tag, "repo": repo}


def scenario_unreachable(work):
    return {"run": run_tool(f"http://127.0.0.1:{PORT + 999}", work / "out", "any/img:1")}


def scenario_token(work, field):
    """Token auth (JWT from our token server) plus blob redirects to another host."""
    layers = [registry.busybox_layer(), small_layer("auth\n", compress=False)]
    with registry.start_registry(work / "reg", PORT, auth="token", redirect=True,
                                 token_field=field) as reg:
        pushed = registry.push_image(reg.url, "private/img", "v2", layers)
        anonymous = registry.Client(reg.url).request(
            "GET", "/v2/private/img/manifests/v2", auth=False)
        before = len(reg.token_server.requests)
        run = run_tool(reg.url, work / "out", "private/img:v2")
        tokens = reg.token_server.requests[before:]
        blobs = reg.blob_server.requests
    return {"run": run, "anonymous_status": anonymous[0],
            "challenge": anonymous[1].get("www-authenticate", ""),
            "token_requests": tokens, "blob_requests": blobs,
            "layers": [d["digest"] for d in pushed.layers], "config": pushed.config_digest}


def scenario_token_token(work):
    return scenario_token(work, "token")


def scenario_token_access_token(work):
    return scenario_token(work, "access_token")


def scenario_tty(work):
    with registry.start_registry(work / "reg", PORT) as reg:
        pushed = registry.push_image(reg.url, "tty/img", "1", [registry.busybox_layer()])
        run = run_tool(reg.url, work / "out", "tty/img:1", tty=True)
        bad = registry.push_image(reg.url, "tty/bad", "1", [small_layer("bad\n")])
        registry.corrupt_blob(reg, bad.layers[0]["digest"])
        failed = run_tool(reg.url, work / "bad", "tty/bad:1", tty=True)
    return {"run": run, "layer": pushed.layers[0]["digest"], "failed": failed}


def scenario_zstd(work):
    layer = (small_layer("z\n"), "application/vnd.oci.image.layer.v1.tar+zstd")
    with registry.start_registry(work / "reg", PORT) as reg:
        registry.push_image(reg.url, "z/img", "1", [layer], media="oci")
        run = run_tool(reg.url, work / "out", "z/img:1")
    return {"run": run}


def scenario_multi(work):
    """Two images in one call sharing a base layer; one by tag, one pinned by digest.
    DIR exists beforehand (as bocker's pull creates it)."""
    base = registry.busybox_layer()
    with registry.start_registry(work / "reg", PORT) as reg:
        one = registry.push_image(reg.url, "app/one", "1", [base, small_layer("one\n")])
        two = registry.push_image(reg.url, "app/two", "2", [base, small_layer("two\n")])
        registry.push_image(reg.url, "app/two", "moved", [small_layer("moved\n")])
        run = run_tool(reg.url, work / "out", "app/one:1", f"app/two:moved@{two}")
    return {"run": run, "one": [d["digest"] for d in one.layers],
            "two": [d["digest"] for d in two.layers]}


def scenario_main(name, work):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    result = globals()[f"scenario_{name}"](Path(work))
    print(json.dumps(result))


# =========================================================================== test side

def run_scenario(name, tmp_path):
    """Run scenario_<name> in a new network namespace; returns its JSON facts."""
    proc = subprocess.run(["unshare", "--net", "--", sys.executable, __file__, name,
                           str(tmp_path)], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"scenario {name} failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def tree(path):
    """{relative path: sha256 / 'dir' / 'link->target'} of everything under path."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                out[rel] = "link->" + os.readlink(full)
            elif os.path.isdir(full):
                out[rel] = "dir"
            else:
                out[rel] = sha256_file(full)
    return out


def assert_one_line_error(run, *fragments):
    assert run["rc"] == 1, run
    assert run["stdout"] == "", run
    lines = run["stderr"].splitlines()
    assert len(lines) == 1, run
    assert lines[0].startswith(f"{NAME}: "), run
    for fragment in fragments:
        assert fragment in lines[0], (fragment, run)


def assert_no_leftovers(work):
    """Only what the scenario made itself: no DIR, no staging directory."""
    assert sorted(os.listdir(work)) == ["reg"], os.listdir(work)


def check_layout(out, repo_tag, layer_digests, config_digest):
    """The docker-save layout for one image; returns the manifest.json entry."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert isinstance(manifest, list) and len(manifest) == 1
    entry = manifest[0]
    assert entry["RepoTags"] == [repo_tag]
    config_hex = config_digest.split(":")[1]
    assert entry["Config"] == f"{config_hex}.json"
    assert sha256_file(out / entry["Config"]) == config_digest
    assert len(entry["Layers"]) == len(layer_digests)
    parent = None
    for path, digest in zip(entry["Layers"], layer_digests):
        layer_id, leaf = path.split("/")
        assert leaf == "layer.tar" and len(layer_id) == 64
        assert sha256_file(out / path) == digest           # the blob, byte for byte
        assert (out / layer_id / "VERSION").read_text() == "1.0"
        v1 = json.loads((out / layer_id / "json").read_text())
        assert v1["id"] == layer_id
        assert v1.get("parent") == parent
        assert "created" in v1
        parent = layer_id
    top = json.loads((out / parent / "json").read_text())
    config = json.loads((out / entry["Config"]).read_text())
    assert top["architecture"] == config["architecture"]
    assert top["config"] == config["config"]
    name, tag = repo_tag.rsplit(":", 1)
    assert json.loads((out / "repositories").read_text()) == {name: {tag: parent}}
    expected = {"manifest.json", "repositories", entry["Config"]} \
        | {p.split("/")[0] for p in entry["Layers"]}
    assert set(os.listdir(out)) == expected
    return entry


def extract(out, entry, dest):
    """Unpack the layers bottom to top with `tar xf`, as bocker's pull does."""
    dest.mkdir()
    for path in entry["Layers"]:
        subprocess.run(["tar", "xf", str(out / path), "-C", str(dest)], check=True)


def test_usage_errors(tmp_path):
    for argv in ([], [str(tmp_path / "out")]):
        proc = subprocess.run([str(TOOL), *argv], capture_output=True, text=True)
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert proc.stderr.startswith("usage: download-frozen-image-v2 DIR IMAGE")
        assert len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_schema2_image_layout(tmp_path):
    facts = run_scenario("schema2", tmp_path)
    out = tmp_path / "out"
    run = facts["run"]
    assert run == {"rc": 0, "stdout": DONE.format(out), "stderr": ""}   # quiet, no tty
    assert facts["media"] == [registry.DOCKER_LAYER_GZIP, registry.DOCKER_LAYER_TAR]
    entry = check_layout(out, "test/busybox:1.0", facts["layers"], facts["config"])
    assert sorted(os.listdir(tmp_path)) == ["out", "reg"]                 # no staging left
    root = tmp_path / "root"
    extract(out, entry, root)
    assert (root / "bin/busybox").read_bytes() == Path(registry.BUSYBOX).read_bytes()
    assert os.readlink(root / "bin/sh") == "busybox"
    assert (root / "etc/hello").read_text() == "hello from layer 2\n"
    assert (root / "etc/.wh.group").is_file()
    assert (root / "tmp/.wh..wh..opq").is_file()
    assert (root / "proc").is_dir()


def test_oci_manifest(tmp_path):
    facts = run_scenario("oci", tmp_path)
    out = tmp_path / "out"
    assert facts["run"] == {"rc": 0, "stdout": DONE.format(out), "stderr": ""}
    assert facts["manifest_media"] == registry.OCI_MANIFEST
    assert facts["media"] == [registry.OCI_LAYER_GZIP, registry.OCI_LAYER_TAR]
    entry = check_layout(out, "oci/img:v1", facts["layers"], facts["config"])
    root = tmp_path / "root"
    extract(out, entry, root)
    assert (root / "etc/which").read_text() == "oci base\n"
    assert (root / "etc/oci").read_text() == "top\n"


def check_index_result(tmp_path, facts):
    out = tmp_path / "out"
    assert facts["run"] == {"rc": 0, "stdout": DONE.format(out), "stderr": ""}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest[0]["RepoTags"] == ["multi/arch:latest"]
    (layer,) = manifest[0]["Layers"]
    assert sha256_file(out / layer) == facts["mine"]
    assert sha256_file(out / layer) not in facts["others"]
    with tarfile.open(out / layer) as tar:
        assert tar.extractfile("etc/which").read().decode() == facts["arch"] + "\n"
    config = json.loads((out / manifest[0]["Config"]).read_text())
    assert (config["os"], config["architecture"]) == ("linux", facts["arch"])


def test_manifest_list_picks_this_machine(tmp_path):
    check_index_result(tmp_path, run_scenario("index_docker", tmp_path))


def test_oci_index_picks_this_machine(tmp_path):
    check_index_result(tmp_path, run_scenario("index_oci", tmp_path))


def test_no_matching_platform(tmp_path):
    facts = run_scenario("no_platform", tmp_path)
    assert_one_line_error(facts["run"], f"linux/{facts['ours']}",
                          f"linux/{facts['foreign']}", f"windows/{facts['ours']}")
    assert_no_leftovers(tmp_path)


def test_corrupted_blob_leaves_existing_dir_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    (out / "sub").mkdir()
    before = tree(out)
    facts = run_scenario("corrupt", tmp_path)
    assert_one_line_error(facts["run"], facts["bad"], "verification")
    assert tree(out) == before


def test_truncated_blob(tmp_path):
    facts = run_scenario("truncated", tmp_path)
    assert_one_line_error(facts["run"], facts["bad"])
    assert_no_leftovers(tmp_path)


def test_connection_dropped_mid_blob(tmp_path):
    facts = run_scenario("dropped", tmp_path)
    assert_one_line_error(facts["run"], "truncated")
    assert_no_leftovers(tmp_path)


def test_unknown_tag_and_repo(tmp_path):
    facts = run_scenario("unknown", tmp_path)
    assert_one_line_error(facts["tag"], "known/img/manifests/2", "MANIFEST_UNKNOWN")
    assert_one_line_error(facts["repo"], "nobody/here")
    assert "UNKNOWN" in facts["repo"]["stderr"]
    assert_no_leftovers(tmp_path)


def test_unreachable_registry(tmp_path):
    facts = run_scenario("unreachable", tmp_path)
    assert_one_line_error(facts["run"], "cannot reach", f"127.0.0.1:{PORT + 999}",
                          "refused")
    assert os.listdir(tmp_path) == []


def check_token_result(tmp_path, facts):
    out = tmp_path / "out"
    assert facts["anonymous_status"] == 401                        # auth really enforced
    assert facts["challenge"].startswith("Bearer realm=")
    assert facts["run"] == {"rc": 0, "stdout": DONE.format(out), "stderr": ""}
    check_layout(out, "private/img:v2", facts["layers"], facts["config"])
    # One token, fetched anonymously, for exactly the pull scope of this repository.
    assert [(r["path"], r["query"], r["authorization"]) for r in facts["token_requests"]] \
        == [("/token", {"service": [registry.SERVICE],
                        "scope": ["repository:private/img:pull"]}, None)]
    # Every blob (config + layers) was fetched from the redirect target, and the bearer
    # token was not handed to that other host.
    fetched = sorted(r["path"].split("/")[-2] for r in facts["blob_requests"])
    wanted = sorted(d.split(":")[1] for d in facts["layers"] + [facts["config"]])
    assert fetched == wanted
    assert all(r["authorization"] is None for r in facts["blob_requests"])


def test_bearer_token_auth_with_redirects(tmp_path):
    check_token_result(tmp_path, run_scenario("token_token", tmp_path))


def test_bearer_token_from_access_token_field(tmp_path):
    check_token_result(tmp_path, run_scenario("token_access_token", tmp_path))


def test_progress_only_on_a_terminal(tmp_path):
    facts = run_scenario("tty", tmp_path)
    run = facts["run"]
    assert run["rc"] == 0
    assert run["stdout"] == DONE.format(tmp_path / "out")
    short = facts["layer"].split(":")[1][:12]
    assert f"{short}: done" in run["stderr"]
    assert " MB" in run["stderr"] or " kB" in run["stderr"]
    # An error ends the progress line first, so it stands on a line of its own.
    failed = facts["failed"]
    assert failed["rc"] == 1 and failed["stdout"] == ""
    last = failed["stderr"].splitlines()[-1]
    assert last.startswith(f"{NAME}: tty/bad:1: blob sha256:"), failed
    assert "failed verification" in last
    assert not (tmp_path / "bad").exists()


def test_unsupported_layer_media_type(tmp_path):
    facts = run_scenario("zstd", tmp_path)
    assert_one_line_error(facts["run"], "unsupported media type", "zstd")
    assert_no_leftovers(tmp_path)


def test_several_images_into_existing_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    facts = run_scenario("multi", tmp_path)
    assert facts["run"] == {"rc": 0, "stdout": DONE.format(out), "stderr": ""}
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["RepoTags"] for e in manifest] == [["app/one:1"], ["app/two:moved"]]
    for entry, digests in zip(manifest, (facts["one"], facts["two"])):
        assert [sha256_file(out / p) for p in entry["Layers"]] == digests
    # Same base layer, same chain: same v1 id, stored once.
    assert manifest[0]["Layers"][0] == manifest[1]["Layers"][0]
    assert manifest[0]["Layers"][1] != manifest[1]["Layers"][1]
    tops = [e["Layers"][-1].split("/")[0] for e in manifest]
    assert json.loads((out / "repositories").read_text()) == \
        {"app/one": {"1": tops[0]}, "app/two": {"moved": tops[1]}}
    assert not [n for n in os.listdir(out) if n.startswith(".")]   # staging dir gone


# --------------------------------------------------------------------------- unit level

def load_tool():
    loader = importlib.machinery.SourceFileLoader("dfi", str(TOOL))
    spec = importlib.util.spec_from_loader("dfi", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_image_references():
    dfi = load_tool()
    ref = dfi.ImageRef("busybox", on_docker_hub=True)
    assert (ref.repo, ref.display, ref.reference) == ("library/busybox", "busybox", "latest")
    ref = dfi.ImageRef("library/ubuntu:22.04", on_docker_hub=True)
    assert (ref.repo, ref.display, ref.tag) == ("library/ubuntu", "ubuntu", "22.04")
    ref = dfi.ImageRef("busybox:1.36", on_docker_hub=False)
    assert (ref.repo, ref.display, ref.tag) == ("busybox", "busybox", "1.36")
    digest = "sha256:" + "ab" * 32
    ref = dfi.ImageRef(f"me/app:v1@{digest}", on_docker_hub=False)
    assert (ref.repo, ref.tag, ref.reference) == ("me/app", "v1", digest)
    for bad in ("UPPER", "a//b", "x:bad tag", "x@sha256:1234", "../etc"):
        with pytest.raises(dfi.Failure):
            dfi.ImageRef(bad, on_docker_hub=False)


def test_platform_choice(monkeypatch):
    dfi = load_tool()
    d = {n: "sha256:" + (c * 64) for n, c in (("v6", "1"), ("v7", "2"), ("arm64", "3"))}
    entries = [{"digest": d["v6"], "platform": {"os": "linux", "architecture": "arm",
                                                "variant": "v6"}},
               {"digest": d["v7"], "platform": {"os": "linux", "architecture": "arm",
                                                "variant": "v7"}},
               {"digest": d["arm64"], "platform": {"os": "linux", "architecture": "arm64",
                                                   "variant": "v8"}}]
    pick = dfi.choose_platform
    monkeypatch.setattr(dfi.platform, "machine", lambda: "armv7l")
    assert pick(entries)["digest"] == d["v7"]
    monkeypatch.setattr(dfi.platform, "machine", lambda: "armv6l")
    assert pick(entries)["digest"] == d["v6"]
    assert pick([{"digest": d["v7"], "platform": {"os": "linux", "architecture": "arm"}}]) \
        ["digest"] == d["v7"]                                 # no variant given: accepted
    monkeypatch.setattr(dfi.platform, "machine", lambda: "aarch64")
    assert pick(entries)["digest"] == d["arm64"]
    monkeypatch.setattr(dfi.platform, "machine", lambda: "x86_64")
    with pytest.raises(dfi.Failure, match=r"linux/amd64 .*linux/arm/v6, linux/arm/v7"):
        pick(entries)

if __name__ == "__main__":
    scenario_main(sys.argv[1], sys.argv[2])
