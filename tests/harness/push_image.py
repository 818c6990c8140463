"""Push a local Docker image to a registry (Docker Registry HTTP API v2) without `docker push`.

`make demo` and the end-to-end test put their images into the demo's registry (a sandbox server)
from this machine, whose Docker engine must not be reconfigured to trust that registry. This reads
`docker save IMAGE`, gzips each layer once (cached by its diff id under --cache), uploads the blobs
the registry does not have yet and puts a schema 2 manifest under REPOSITORY:TAG.

    python tests/harness/push_image.py IMAGE http://198.18.0.3:5000 REPOSITORY:TAG [...] --cache DIR

Every request has a bounded time (--timeout, default 60 s per request).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def request(method: str, url: str, data: bytes | Path | None = None, headers: dict[str, str] | None = None,
            timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    body: bytes | None
    headers = dict(headers or {})
    if isinstance(data, Path):
        body = data.read_bytes()
    else:
        body = data
    if body is not None:
        headers.setdefault("Content-Type", "application/octet-stream")
        headers["Content-Length"] = str(len(body))
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the demo registry's URL
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def upload(registry: str, repo: str, digest: str, blob: Path, timeout: float, mount_from: str = "") -> bool:
    """Upload one blob unless the registry has it in this repository (or mounts it from `mount_from`,
    a repository pushed before); True when it was sent."""
    status = request("HEAD", f"{registry}/v2/{repo}/blobs/{digest}", timeout=timeout)[0]
    if status == 200:
        return False
    query = f"?mount={digest}&from={mount_from}" if mount_from else ""
    status, headers, body = request("POST", f"{registry}/v2/{repo}/blobs/uploads/{query}", data=b"", timeout=timeout)
    if status == 201:  # mounted: the registry had it in the other repository
        return False
    if status != 202:
        raise SystemExit(f"push_image: {repo}: starting an upload answered {status}: {body[:300]!r}")
    location = headers.get("Location") or headers.get("location") or ""
    if location.startswith("/"):
        location = registry + location
    separator = "&" if "?" in location else "?"
    status, _headers, body = request("PUT", f"{location}{separator}digest={digest}", data=blob, timeout=timeout)
    if status != 201:
        raise SystemExit(f"push_image: {repo}: uploading {digest[:19]} answered {status}: {body[:300]!r}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("registry", help="http://HOST:PORT")
    parser.add_argument("targets", nargs="+", metavar="REPOSITORY:TAG")
    parser.add_argument("--cache", type=Path, required=True, help="where gzipped layers are kept between runs")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--stamp", type=Path, help="skip the push when this file records the same image, registry "
                                                   "and targets and the registry still has every target")
    args = parser.parse_args(argv)
    registry = args.registry.rstrip("/")
    args.cache.mkdir(parents=True, exist_ok=True)
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", args.image], capture_output=True,
                              text=True, check=True, timeout=60).stdout.strip()
    stamp = f"{image_id} {registry} {' '.join(args.targets)}\n"
    if args.stamp and args.stamp.exists() and args.stamp.read_text() == stamp and all(
            request("HEAD", f"{registry}/v2/{t.rpartition(':')[0]}/manifests/{t.rpartition(':')[2]}",
                    headers={"Accept": MANIFEST}, timeout=args.timeout)[0] == 200 for t in args.targets):
        print(f"{args.image}: already in the registry as {', '.join(args.targets)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="push-image-") as tmp:
        saved = Path(tmp) / "image.tar"
        with saved.open("wb") as out:
            subprocess.run(["docker", "save", args.image], stdout=out, check=True, timeout=600)
        with tarfile.open(saved) as tar:
            index = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
            config = tar.extractfile(index["Config"]).read()  # type: ignore[union-attr]
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
            layers = []
            for member, diff_id in zip(index["Layers"], diff_ids):
                cached = args.cache / (diff_id.split(":", 1)[1] + ".tar.gz")
                if not cached.exists():
                    partial = cached.with_suffix(".partial")
                    with tar.extractfile(member) as src, gzip.open(partial, "wb", compresslevel=1) as dst:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, dst, 1 << 20)
                    partial.replace(cached)
                layers.append((sha256_file(cached), cached))
        config_path = Path(tmp) / "config.json"
        config_path.write_bytes(config)
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "size": len(config), "digest": config_digest},
            "layers": [{"mediaType": LAYER, "size": path.stat().st_size, "digest": digest} for digest, path in layers],
        }).encode()
        first = ""
        for target in args.targets:
            repo, tag = target.rpartition(":")[::2]
            if not repo or not tag:
                raise SystemExit(f"push_image: {target!r}: expected REPOSITORY:TAG")
            sent = sum(upload(registry, repo, digest, path, args.timeout, first) for digest, path in layers)
            upload(registry, repo, config_digest, config_path, args.timeout, first)
            first = first or repo
            status, headers, body = request("PUT", f"{registry}/v2/{repo}/manifests/{tag}", data=manifest,
                                            headers={"Content-Type": MANIFEST}, timeout=args.timeout)
            if status != 201:
                raise SystemExit(f"push_image: {target}: the manifest answered {status}: {body[:300]!r}")
            print(f"pushed {args.image} as {target} ({sent} of {len(layers)} layers sent, "
                  f"{headers.get('Docker-Content-Digest', '')})")
    if args.stamp:
        args.stamp.write_text(stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
