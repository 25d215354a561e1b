"""STAND-IN base images for the compose test, built from Debian's packages when the real ones are absent.

No image registry is reachable on the development machine, so `python:3.11-slim`, `redis:7` and
`postgres:17` cannot be pulled. Each is replaced, only when no image of that name is present, by a
local image made with `mmdebstrap --variant=minbase bookworm` and `docker import`, tagged with the
name docker-compose.yml uses and labelled `micrograd-service.standin`. They are test fixtures,
not products: the project's Dockerfile and docker-compose.yml must (and do) work with the real images.

- python:3.11-slim: Debian's Python 3.11 with pip usable as in the official image (`python`, `pip`,
  installs into /usr/local, no "externally managed" refusal). It carries the host's CA bundle as
  PIP_CERT, so pip can reach the package index through a TLS-intercepting proxy, as the host's pip does.
- redis:7: Debian's redis-server 7.0, run as the redis user in /data, protected mode off (as the
  official image's build has it).
- postgres:17: Debian bookworm's PostgreSQL **15** (bookworm has no 17) with an entrypoint that honours
  POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB on an empty PGDATA, and pg_isready on PATH.

An image is rebuilt when it is a stand-in made from a different recipe (the label holds the recipe's
hash); a real image of that name is never touched.

    python -m tests.compose.standins        # build the missing ones (root, with dockerd running)
"""
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent / "standins"
LABEL = "micrograd-service.standin"
SUITE = "bookworm"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NO_DOCS = ("doc", "man", "info")  # fewer files to unpack; locales stay (PostgreSQL needs them)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass
class Recipe:
    packages: list[str]
    hooks: list[str]                     # mmdebstrap --customize-hook values ("$1" is the new root)
    changes: list[str]                   # docker import --change values
    files: list[Path] = field(default_factory=list)  # read by the hooks; their content is part of the hash

    def digest(self) -> str:
        payload = json.dumps([SUITE, NO_DOCS, self.packages, self.hooks, self.changes]).encode()
        payload += b"".join(path.read_bytes() for path in self.files)
        return hashlib.sha256(payload).hexdigest()[:16]


def _entrypoint(name: str) -> list[str]:
    return [f"upload {HERE / name} /usr/local/bin/docker-entrypoint.sh",
            'chmod 755 "$1/usr/local/bin/docker-entrypoint.sh"']


RECIPES = {
    "python:3.11-slim": Recipe(
        packages=["python3", "python3-pip", "python3-venv", "ca-certificates"],
        hooks=['rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
               'ln -sf python3 "$1/usr/bin/python"',
               f'cp {HOST_CA_BUNDLE} "$1/usr/local/share/host-ca-bundle.crt"'],
        changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8",
                 "ENV PIP_CERT=/usr/local/share/host-ca-bundle.crt",
                 'CMD ["python3"]'],
        files=[HOST_CA_BUNDLE]),
    "redis:7": Recipe(
        packages=["redis-server"],
        hooks=[*_entrypoint("redis-entrypoint.sh"), 'mkdir -p "$1/data"'],
        changes=[f"ENV PATH={PATH}", "WORKDIR /data", "VOLUME /data", "EXPOSE 6379",
                 'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["redis-server"]'],
        files=[HERE / "redis-entrypoint.sh"]),
    "postgres:17": Recipe(
        packages=["postgresql-15"],
        # the package's own "main" cluster is of no use: the entrypoint makes one in PGDATA
        hooks=['rm -rf "$1/etc/postgresql/15" "$1/var/lib/postgresql/15"',
               *_entrypoint("postgres-entrypoint.sh"), 'mkdir -p "$1/var/lib/postgresql/data"'],
        changes=[f"ENV PATH=/usr/lib/postgresql/15/bin:{PATH}", "ENV LANG=C.UTF-8",
                 "ENV PGDATA=/var/lib/postgresql/data", "VOLUME /var/lib/postgresql/data", "EXPOSE 5432",
                 "STOPSIGNAL SIGINT", 'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["postgres"]'],
        files=[HERE / "postgres-entrypoint.sh"]),
}


def image_labels(image: str):
    """The image's labels ({} if none), or None when no image of that name exists."""
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout) or {}


def build(image: str, recipe: Recipe) -> None:
    """mmdebstrap's tarball becomes an untagged image (`docker import`); a two-line build on it adds the
    metadata, which `docker import --change` cannot all set (no STOPSIGNAL) - nothing is fetched there."""
    command = ["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(recipe.packages)}",
               "--dpkgopt=force-unsafe-io", *[f"--dpkgopt=path-exclude=/usr/share/{part}/*" for part in NO_DOCS],
               *[f"--customize-hook={hook}" for hook in recipe.hooks], SUITE, "-"]
    debootstrap = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        rootfs = subprocess.run(["docker", "import", "-", ], stdin=debootstrap.stdout, check=True,
                                capture_output=True, text=True).stdout.strip()
    finally:
        debootstrap.stdout.close()
        if debootstrap.wait() != 0:
            raise RuntimeError(f"mmdebstrap for the {image} stand-in failed ({debootstrap.returncode})")
    dockerfile = "\n".join([f"FROM {rootfs}", *recipe.changes,
                            f'LABEL {LABEL}="{recipe.digest()}" description="STAND-IN for {image}, '
                            'built by tests/compose/standins.py from Debian packages"']) + "\n"
    subprocess.run(["docker", "build", "--quiet", "--tag", image, "-"], input=dockerfile, text=True,
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "DOCKER_BUILDKIT": "0"})


def ensure(image: str) -> str:
    """Makes sure `image` exists: 'real' (not ours), 'cached' (an up-to-date stand-in) or 'built'."""
    recipe = RECIPES[image]
    labels = image_labels(image)
    if labels is not None and LABEL not in labels:
        return "real"
    if labels is not None and labels[LABEL] == recipe.digest():
        return "cached"
    old = image_id(image) if labels is not None else None
    build(image, recipe)
    if old:  # our own outdated stand-in, now untagged (fails harmlessly if a container still uses it)
        subprocess.run(["docker", "image", "rm", old], capture_output=True)
    return "built"


def image_id(image: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                          capture_output=True, text=True, check=True).stdout.strip()


def ensure_all() -> dict[str, tuple[str, float]]:
    """All three, side by side (they mostly wait on dpkg): {image: (how, seconds)}."""
    def timed(image):
        start = time.monotonic()
        return image, (ensure(image), time.monotonic() - start)
    with ThreadPoolExecutor(max_workers=len(RECIPES)) as pool:
        return dict(pool.map(timed, RECIPES))


if __name__ == "__main__":
    for image, (how, seconds) in ensure_all().items():
        print(f"{image}: {how} ({seconds:.1f} s)")
    sys.exit(0)
