"""Test helpers around a local image registry.

- start_registry(): Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, storing
  blobs under a temporary directory; optionally with token auth (plus a small token
  server of our own) and with blob downloads redirected to a second HTTP server.
- push_image() / push_index(): upload layers, a config and a manifest (or a manifest
  list / OCI index) through the registry's HTTP API.
- make_layer() / busybox_layer(): build layer tars in memory, whiteouts included.
- corrupt_blob(): damage a stored blob so that its digest no longer matches.

Everything talks to 127.0.0.1 only. Meant to run inside a private network namespace
(e.g. `unshare --net`, with `ip link set lo up`), where those ports are ours alone.
Needs: docker-registry (apt), openssl (CLI), /bin/busybox (busybox-static) for
busybox_layer().
"""

import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
BUSYBOX = "/bin/busybox"

SERVICE = "bocker-test-registry"
ISSUER = "bocker-test-token-issuer"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"

FIXED_MTIME = 1_700_000_000     # layer tars are reproducible: same input, same digest


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def machine_arch():
    """This machine's architecture in OCI terms (what a puller will look for)."""
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
            "i686": "386", "i386": "386"}.get(m, m)


# --------------------------------------------------------------------------- layers

class Symlink(str):
    """make_layer() value: a symbolic link to this target."""


class Dir:
    """make_layer() value: a directory (also None or a path ending in '/')."""

    def __init__(self, mode=0o755):
        self.mode = mode


def whiteout(path):
    """Layer path that deletes `path` from the layers below (AUFS/OCI whiteout)."""
    head, _, name = path.strip("/").rpartition("/")
    return f"{head}/.wh.{name}" if head else f".wh.{name}"


def opaque_whiteout(directory):
    """Layer path that hides everything below `directory` in lower layers."""
    return f"{directory.strip('/')}/.wh..wh..opq"


def make_layer(files, compress=False):
    """A layer tar (bytes) from {path: content}. Content: bytes/str for a regular file
    (an int mode may be given as (content, mode)), Symlink(target), Dir(mode) / None for
    a directory. Whiteouts are plain empty files: {whiteout('etc/x'): b''}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, content in files.items():
            add_entry(tar, path, content)
    data = buf.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


def add_entry(tar, path, content):
    info = tarfile.TarInfo(path.strip("/"))
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    mode = None
    if isinstance(content, tuple):
        content, mode = content
    if content is None or isinstance(content, Dir) or path.endswith("/"):
        info.type = tarfile.DIRTYPE
        info.mode = content.mode if isinstance(content, Dir) else (mode or 0o755)
        tar.addfile(info)
    elif isinstance(content, Symlink):
        info.type = tarfile.SYMTYPE
        info.linkname = str(content)
        info.mode = 0o777
        tar.addfile(info)
    else:
        data = content.encode() if isinstance(content, str) else bytes(content)
        info.size = len(data)
        info.mode = mode if mode is not None else 0o644
        tar.addfile(info, io.BytesIO(data))


def busybox_applets():
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    return [name for name in out.stdout.split() if name and "/" not in name]


def busybox_layer(compress=True):
    """A minimal busybox rootfs layer: bin/busybox from Debian's busybox-static, every
    applet (sh, mount, ls, cat, echo, ...) as a symlink to it, and etc/, proc/, tmp/."""
    files = {"bin/": None, "dev/": None, "etc/": None, "proc/": None, "sys/": None,
             "tmp/": Dir(0o1777), "root/": Dir(0o700)}
    files["bin/busybox"] = (Path(BUSYBOX).read_bytes(), 0o755)
    for applet in busybox_applets():
        if applet != "busybox":
            files[f"bin/{applet}"] = Symlink("busybox")
    files["etc/passwd"] = "root:x:0:0:root:/root:/bin/sh\n"
    files["etc/group"] = "root:x:0:\n"
    return make_layer(files, compress=compress)


def is_gzip(data):
    return data[:2] == b"\x1f\x8b"


def diff_id(data):
    """Digest of the uncompressed layer tar, as listed in the config's rootfs.diff_ids."""
    return sha256_digest(gzip.decompress(data) if is_gzip(data) else data)


def image_config(layers, arch=None, os_name="linux", variant=None, cmd=("/bin/sh",)):
    """A minimal image config for these layer blobs."""
    config = {
        "architecture": arch or machine_arch(),
        "os": os_name,
        "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": list(cmd)},
        "rootfs": {"type": "layers", "diff_ids": [diff_id(d) for d in layers]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "tests/registry.py"}
                    for _ in layers],
    }
    if variant:
        config["variant"] = variant
    return config


# --------------------------------------------------------------------------- HTTP client

class Client:
    """Tiny registry client for pushing: plain http.client (no proxies), following the
    same bearer-token dance a real client does when the registry answers 401."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        self.tokens = {}

    def request(self, method, url, body=None, headers=None, scope=None, auth=True):
        """(status, {lower-case header: value}, body). url may be a path on the
        registry. On 401, fetch a token for the challenge's scope and retry once
        (unless auth=False)."""
        if url.startswith("/"):
            url = self.url + url
        headers = dict(headers or {})
        status, hdrs, data = self._send(method, url, body, headers, scope)
        if status == 401 and auth:
            challenge = hdrs.get("www-authenticate", "")
            scope = self._fetch_token(challenge)
            status, hdrs, data = self._send(method, url, body, headers, scope)
        return status, hdrs, data

    def _send(self, method, url, body, headers, scope):
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        if scope in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def _fetch_token(self, challenge):
        scheme, _, params = challenge.partition(" ")
        fields = dict(part.split("=", 1) for part in _split_params(params))
        fields = {k: v.strip('"') for k, v in fields.items()}
        if scheme.lower() != "bearer":
            raise RuntimeError(f"unexpected challenge {challenge!r}")
        query = urllib.parse.urlencode({"service": fields.get("service", ""),
                                        "scope": fields.get("scope", "")})
        status, _, data = self._send("GET", f"{fields['realm']}?{query}", None, {}, None)
        if status != 200:
            raise RuntimeError(f"token server answered {status}")
        answer = json.loads(data)
        self.tokens[fields.get("scope")] = answer.get("token") or answer.get("access_token")
        return fields.get("scope")


def _split_params(params):
    """Split k="v",k2="v,2" on the commas outside quotes."""
    out, cur, quoted = [], "", False
    for ch in params:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _check(status, expected, what, data):
    if status != expected:
        raise RuntimeError(f"{what}: HTTP {status}: {data[:300]!r}")


def push_blob(url, name, data, client=None):
    """Upload one blob (POST to open an upload session, PUT with ?digest= to finish).
    Returns its digest. Skips the upload when the registry already has it."""
    client = client or Client(url)
    digest = sha256_digest(data)
    status, _, _ = client.request("HEAD", f"/v2/{name}/blobs/{digest}")
    if status == 200:
        return digest
    status, hdrs, body = client.request("POST", f"/v2/{name}/blobs/uploads/",
                                        body=b"", headers={"Content-Length": "0"})
    _check(status, 202, f"start upload to {name}", body)
    location = urllib.parse.urljoin(client.url + "/", hdrs["location"])
    sep = "&" if "?" in location else "?"
    status, _, body = client.request(
        "PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", body=data,
        headers={"Content-Type": "application/octet-stream",
                 "Content-Length": str(len(data))})
    _check(status, 201, f"finish upload of {digest}", body)
    return digest


def push_manifest(url, name, reference, manifest, media_type, client=None):
    """PUT /v2/<name>/manifests/<reference>; returns (digest, size)."""
    client = client or Client(url)
    body = json.dumps(manifest, indent=3).encode()
    status, _, data = client.request("PUT", f"/v2/{name}/manifests/{reference}", body=body,
                                     headers={"Content-Type": media_type})
    _check(status, 201, f"push manifest {name}:{reference}", data)
    return sha256_digest(body), len(body)


class PushedImage(str):
    """The manifest digest (a str), with details of what was pushed as attributes."""

    def __new__(cls, digest, **attrs):
        obj = super().__new__(cls, digest)
        obj.digest = digest
        obj.__dict__.update(attrs)
        return obj


def _load(blob):
    if isinstance(blob, (str, os.PathLike)):
        return Path(blob).read_bytes()
    return bytes(blob)


def push_image(url, name, tag, layers, config=None, media="docker", client=None):
    """Push an image: each layer (bytes, a file path, or (bytes-or-path, media type);
    gzip vs plain tar is detected), a config blob (dict, bytes, or None for a default
    one) and a Docker schema 2 or OCI manifest under `tag` (None: push by digest only).
    Returns the manifest digest as a PushedImage (.size, .media_type, .layers,
    .config_digest, .manifest)."""
    client = client or Client(url)
    oci = media == "oci"
    descriptors, blobs = [], []
    for layer in layers:
        data, layer_type = (_load(layer[0]), layer[1]) if isinstance(layer, tuple) \
            else (_load(layer), None)
        if layer_type is None:
            if oci:
                layer_type = OCI_LAYER_GZIP if is_gzip(data) else OCI_LAYER_TAR
            else:
                layer_type = DOCKER_LAYER_GZIP if is_gzip(data) else DOCKER_LAYER_TAR
        digest = push_blob(url, name, data, client)
        blobs.append(data)
        descriptors.append({"mediaType": layer_type, "size": len(data), "digest": digest})
    if config is None:
        config = image_config(blobs)
    config_bytes = config if isinstance(config, bytes) else json.dumps(config).encode()
    config_digest = push_blob(url, name, config_bytes, client)
    manifest_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                   "size": len(config_bytes), "digest": config_digest},
        "layers": descriptors,
    }
    body_digest = sha256_digest(json.dumps(manifest, indent=3).encode())
    digest, size = push_manifest(url, name, tag or body_digest, manifest, manifest_type,
                                 client)
    return PushedImage(digest, size=size, media_type=manifest_type, layers=descriptors,
                       config_digest=config_digest, config=config_bytes, manifest=manifest)


def push_index(url, name, tag, manifests, media="docker", client=None):
    """Push a manifest list (docker) or image index (oci) under `tag`. `manifests`:
    [(digest, size, media type, platform dict)]; a PushedImage may stand in for
    (digest, size, media type) as (pushed, platform). Returns the list's digest."""
    entries = []
    for item in manifests:
        if len(item) == 2:
            pushed, plat = item
            item = (pushed.digest, pushed.size, pushed.media_type, plat)
        digest, size, media_type, plat = item
        entries.append({"mediaType": media_type, "size": size, "digest": digest,
                        "platform": plat})
    list_type = OCI_INDEX if media == "oci" else DOCKER_LIST
    index = {"schemaVersion": 2, "mediaType": list_type, "manifests": entries}
    digest, _ = push_manifest(url, name, tag, index, list_type, client)
    return digest


# --------------------------------------------------------------------------- servers

class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server:
    """An http.server on 127.0.0.1 (port 0: any free port) in a daemon thread."""

    def __init__(self, handler, port=0):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.requests = []          # one dict per request: path, query, authorization
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def record(self, handler):
        parts = urllib.parse.urlsplit(handler.path)
        self.requests.append({"method": handler.command, "path": parts.path,
                              "query": urllib.parse.parse_qs(parts.query),
                              "authorization": handler.headers.get("Authorization")})

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_signing_cert(directory):
    """RSA key + self-signed certificate (openssl CLI). The certificate is the
    registry's rootcertbundle; tokens carry it in their x5c header."""
    key, cert = Path(directory, "token.key"), Path(directory, "token.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=bocker test token issuer"],
                   check=True, capture_output=True)
    return key, cert


class TokenServer(_Server):
    """Anonymous token endpoint in the style of Docker Hub's auth service.

    GET /token?service=...&scope=repository:NAME:pull[,push] answers
    {"token": JWT} (or {"access_token": ...} with field='access_token'). The JWT is
    what distribution's token auth checks: RS256, header x5c = [our certificate],
    claims iss/aud (issuer/service from the registry config), exp/nbf/iat and an
    `access` list granting whatever the scope asked for.
    """

    def __init__(self, directory, field="token"):
        self.key, self.cert = make_signing_cert(directory)
        pem = self.cert.read_text()
        self.x5c = "".join(pem.split("-----")[2].split())   # base64 DER of the cert
        self.field = field
        super().__init__(_TokenHandler)
        self.url = f"http://127.0.0.1:{self.port}/token"

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = f"{b64url(json.dumps(header).encode())}." \
                        f"{b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), capture_output=True,
                             check=True).stdout
        return f"{signing_input}.{b64url(sig)}"

    def issue(self, service, scopes):
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        claims = {"iss": ISSUER, "sub": "", "aud": service, "exp": now + 600,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(),
                  "access": access}
        return self.sign(claims)


class _TokenHandler(_Quiet):
    def do_GET(self):
        server = self.server.owner
        server.record(self)
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        if parts.path != "/token":
            self.send_error(404)
            return
        token = server.issue(query.get("service", [""])[0], query.get("scope", []))
        body = json.dumps({server.field: token, "expires_in": 600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class BlobServer(_Server):
    """Plays the storage backend that registries redirect blob downloads to: serves
    files of the registry's storage directory by path, answers 404 otherwise.
    Set .short_body = True to announce the full Content-Length but send only half the
    bytes and hang up (a connection dropped mid-download)."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.short_body = False
        super().__init__(_BlobHandler)


class _BlobHandler(_Quiet):
    def do_GET(self):
        server = self.server.owner
        server.record(self)
        path = (server.root / urllib.parse.urlsplit(self.path).path.lstrip("/")).resolve()
        if server.root not in path.parents or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if server.short_body:
            data = data[: len(data) // 2]
            self.close_connection = True
        self.wfile.write(data)


# --------------------------------------------------------------------------- registry

class RegistryHandle:
    """A running registry: .url, .storage (filesystem driver root), .token_server and
    .blob_server (or None), .log (its output file), .stop()."""

    def __init__(self, process, url, storage, log, token_server, blob_server):
        self.process, self.url, self.storage, self.log = process, url, storage, log
        self.token_server, self.blob_server = token_server, blob_server

    def blob_path(self, digest):
        algorithm, hexpart = digest.split(":", 1)
        return (Path(self.storage) / "docker/registry/v2/blobs" / algorithm / hexpart[:2]
                / hexpart / "data")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for server in (self.token_server, self.blob_server):
            if server:
                server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _config_yaml(storage, port, token_server, blob_server):
    """The registry's config. JSON is valid YAML, so json.dumps does the quoting."""
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)},
                    "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "bocker-tests"},
    }
    if token_server:
        config["auth"] = {"token": {"realm": token_server.url, "service": SERVICE,
                                    "issuer": ISSUER,
                                    "rootcertbundle": str(token_server.cert)}}
    if blob_server:
        # Distribution's redirect middleware answers blob GETs with 307 to
        # <baseurl>/<storage path>, as cloud storage backends do. "localhost" is a
        # different host name from 127.0.0.1, so clients must not send it credentials.
        config["middleware"] = {"storage": [{"name": "redirect", "options": {
            "baseurl": f"http://localhost:{blob_server.port}"}}]}
    return json.dumps(config, indent=2)


def start_registry(tmpdir, port=5000, auth=None, redirect=False, token_field="token",
                   timeout=15):
    """Start docker-registry on 127.0.0.1:port with storage under tmpdir.

    auth='token': registry token auth with a TokenServer of ours as realm.
    redirect=True: blob GETs answer 307 to a BlobServer on http://localhost:<port>.
    Waits until GET /v2/ answers (200, or 401 with auth) and returns a RegistryHandle.
    """
    if auth not in (None, "token"):
        raise ValueError(f"unsupported auth {auth!r}")
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    storage = tmpdir / "storage"
    storage.mkdir(exist_ok=True)
    token_server = TokenServer(tmpdir, token_field) if auth == "token" else None
    blob_server = BlobServer(storage) if redirect else None
    config = tmpdir / "registry.yml"
    config.write_text(_config_yaml(storage, port, token_server, blob_server))
    log = tmpdir / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(_with_pdeathsig([REGISTRY_BIN, "serve", str(config)]),
                                   stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    handle = RegistryHandle(process, f"http://127.0.0.1:{port}", str(storage), str(log),
                            token_server, blob_server)
    try:
        _wait_ready(handle, timeout)
    except BaseException:
        handle.stop()
        raise
    return handle


def _with_pdeathsig(argv):
    """Have the registry get SIGTERM if the thread that started it dies, so a crashed
    test never leaves one behind (util-linux setpriv, when present). Call
    start_registry() from a thread that lives as long as the registry should."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


def _wait_ready(handle, timeout):
    deadline = time.monotonic() + timeout
    port = int(handle.url.rsplit(":", 1)[1])
    while True:
        if handle.process.poll() is not None:
            raise RuntimeError(f"docker-registry exited ({handle.process.returncode}): "
                               + Path(handle.log).read_text()[-2000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            if status in (200, 401):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"docker-registry not ready after {timeout}s: "
                               + Path(handle.log).read_text()[-2000:])
        time.sleep(0.05)


def corrupt_blob(handle, digest, truncate=False):
    """Damage a stored blob in place: flip one byte in the middle (same size, wrong
    digest), or with truncate=True cut it to half its length."""
    path = handle.blob_path(digest)
    data = bytearray(path.read_bytes())
    if truncate:
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path
