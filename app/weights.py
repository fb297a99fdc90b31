"""ImageNet weights under EMBEDLAB_HOME/weights: fetched once, checked against the publisher's hash, never loaded unchecked.

torchvision's weight files carry the first hex digits of their sha256 in the name
(`resnet18-f37072fd.pth`); a download or a file on disk whose digest does not start with them
is refused. timm's weights come from the Hugging Face hub into weights/hf (the hub client's own
cache), fetched by `embedlab weights fetch timm:<name>` or by a worker on first use. The hub
publishes each file's hash as its ETag (the sha256 of the content for LFS files, which weights
are; the git blob sha1 otherwise) and its client names the cached blob after it, but checks only
the size: embedlab hashes the blob against its name after each download and before each load.
Torch-free: the API checks whether a file is present without importing torch.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from app.backbones import BUILTIN, TIMM_PREFIX, close_matches, is_timm
from app.config import Settings
from app.files import weights_dir

CHUNK = 1 << 20


class WeightsError(Exception):
    """Weights that cannot be had: unknown, offline, unreachable, or failing their hash check."""


def expected_prefix(filename: str) -> str:
    m = re.search(r"-([a-f0-9]{8,})\.", filename)
    if not m:
        raise WeightsError(f"{filename} carries no hash prefix")
    return m.group(1)


def sha256_of(path: Path) -> str:
    return digest_of(path, hashlib.sha256())


def digest_of(path: Path, h) -> str:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hub_digest(blob: Path) -> str | None:
    """The content's hash in the form the hub's ETag names it: sha256 (LFS) or git's blob sha1; None for another name."""
    if re.fullmatch(r"[0-9a-f]{64}", blob.name):
        return sha256_of(blob)
    if re.fullmatch(r"[0-9a-f]{40}", blob.name):
        return digest_of(blob, hashlib.sha1(b"blob %d\0" % blob.stat().st_size))
    return None


def hub_verified(path: Path, downloaded: bool) -> Path:
    """`path` (a hub-cache snapshot file) if its blob's content hashes to the blob's name, the hub's ETag; raises
    WeightsError otherwise, removing a fresh download so that nothing unchecked stays in the cache."""
    blob = path.resolve()
    digest = hub_digest(blob)
    if digest == blob.name:
        return path
    what = f"sha256 {digest[:12]}..., expected {blob.name[:12]}..." if digest else f"{blob.name} is not a hub hash"
    if downloaded:
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise WeightsError(f"{path.name} from the hub failed its hash check ({what}); nothing was saved")
    raise WeightsError(f"{path} fails its hash check ({what}): delete it and run `embedlab weights fetch`")


def weights_filename(backbone: str) -> str:
    spec = BUILTIN.get(backbone)
    if spec is None or spec.weights_file is None:
        raise WeightsError(f"no published weights for {backbone!r}")
    return spec.weights_file


def target_path(settings: Settings, backbone: str) -> Path:
    return weights_dir(settings.home_path) / weights_filename(backbone)


def local_path(settings: Settings, backbone: str) -> Path | None:
    """The weights file for a torchvision backbone, in EMBEDLAB_HOME/weights or torch's hub cache, else None."""
    filename = weights_filename(backbone)
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    for candidate in (weights_dir(settings.home_path) / filename, torch_home / "hub" / "checkpoints" / filename):
        if candidate.is_file():
            return candidate
    return None


def hf_cache(settings: Settings) -> Path:
    return weights_dir(settings.home_path) / "hf"


def timm_local(settings: Settings, backbone: str) -> bool:
    """Whether timm weights for `timm:<name>` are in weights/hf (no network)."""
    name = backbone[len(TIMM_PREFIX) :]
    safe = name.replace("/", "--")
    return (
        any(p.name.startswith(f"models--timm--{safe}") for p in hf_cache(settings).glob("models--timm--*"))
        if hf_cache(settings).is_dir()
        else False
    )


def present(settings: Settings, backbone: str) -> bool:
    if is_timm(backbone):
        return timm_local(settings, backbone)
    return BUILTIN[backbone].weights_file is not None and local_path(settings, backbone) is not None


def verified(path: Path) -> Path:
    """`path` if its sha256 starts with the prefix in its name; raises WeightsError (and loads nothing) otherwise."""
    digest = sha256_of(path)
    if not digest.startswith(expected_prefix(path.name)):
        raise WeightsError(
            f"{path} fails its hash check (sha256 {digest[:12]}..., expected {expected_prefix(path.name)}...): "
            f"delete it and run `embedlab weights fetch`"
        )
    return path


def fetch(settings: Settings, backbone: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """Download a torchvision backbone's weights once (a present, valid file is kept) and return the path."""
    if is_timm(backbone):
        return fetch_timm(settings, backbone)
    filename = weights_filename(backbone)
    existing = local_path(settings, backbone)
    if existing is not None:
        return verified(existing)
    if settings.offline:
        raise WeightsError(f"{filename} is not in {weights_dir(settings.home_path)} and EMBEDLAB_OFFLINE is set")
    url = f"{settings.weights_url.rstrip('/')}/{filename}"
    target = target_path(settings, backbone)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.", suffix=".part")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as r:
            total, done = int(r.headers.get("Content-Length") or 0), 0
            while chunk := r.read(CHUNK):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if not h.hexdigest().startswith(expected_prefix(filename)):
            raise WeightsError(
                f"{url} failed its hash check (sha256 {h.hexdigest()[:12]}..., expected {expected_prefix(filename)}...); nothing was saved"
            )
        os.replace(tmp, target)
    except OSError as e:
        raise WeightsError(f"cannot download {url}: {e}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def fetch_timm(settings: Settings, backbone: str) -> Path:
    """timm weights through the Hugging Face hub client, into weights/hf; downloaded only when missing and not offline,
    hash-checked either way (tests stand a loopback hub in via EMBEDLAB_HUB_URL)."""
    import timm
    from huggingface_hub import hf_hub_download

    cfg = timm.get_pretrained_cfg(backbone[len(TIMM_PREFIX) :])
    if cfg is None or not cfg.hf_hub_id:
        raise WeightsError(f"timm publishes no hub weights for {backbone}")
    filename = cfg.hf_hub_filename or "model.safetensors"
    where = {"cache_dir": hf_cache(settings), "endpoint": settings.hub_url}
    try:
        cached = Path(hf_hub_download(cfg.hf_hub_id, filename, local_files_only=True, **where))
    except Exception:  # noqa: BLE001 - not cached yet
        if settings.offline:
            raise WeightsError(f"timm weights for {backbone} are not in {hf_cache(settings)} and EMBEDLAB_OFFLINE is set") from None
    else:
        return hub_verified(cached, downloaded=False)
    try:
        downloaded = Path(hf_hub_download(cfg.hf_hub_id, filename, **where))
    except Exception as e:  # noqa: BLE001 - the hub client raises many kinds; the reason reaches the user
        raise WeightsError(f"cannot download timm weights for {backbone}: {e}") from None
    return hub_verified(downloaded, downloaded=True)


def listing(settings: Settings) -> list[dict]:
    """Every backbone with its weights file (or timm's hub cache) and whether it is here."""
    rows = []
    for name, spec in BUILTIN.items():
        path = local_path(settings, name) if spec.weights_file else None
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "weights_file": spec.weights_file,
                "pretrained_available": spec.weights_file is not None,
                "weights_present": path is not None,
                "path": str(path) if path else None,
            }
        )
    cache = hf_cache(settings)
    if cache.is_dir():
        for entry in sorted(cache.glob("models--timm--*")):
            model = entry.name[len("models--timm--") :].split(".")[0]
            rows.append(
                {
                    "name": f"{TIMM_PREFIX}{model}",
                    "description": f"timm {model} (hub weights cached)",
                    "weights_file": None,
                    "pretrained_available": True,
                    "weights_present": True,
                    "path": str(entry),
                }
            )
    return rows


def fetch_with_progress(settings: Settings, names: list[str]) -> int:
    """`embedlab weights fetch`: each name with a progress bar; exit status 1 when any failed."""
    import typer

    failed = 0
    for name in names:
        bar = None

        def progress(done: int, total: int, name: str = name) -> None:
            nonlocal bar
            if bar is None:
                bar = typer.progressbar(length=total or None, label=name, file=sys.stderr).__enter__()
            bar.update(done - bar.pos)

        try:
            if not is_timm(name) and name not in BUILTIN:
                raise WeightsError(f"unknown backbone {name!r}" + close_matches(name, BUILTIN))
            path = fetch(settings, name, progress)
            typer.echo(f"{name}: {path}")
        except WeightsError as e:
            typer.echo(f"embedlab: {name}: {e}", err=True)
            failed = 1
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
    return failed
