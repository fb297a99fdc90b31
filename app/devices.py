"""Which devices this installation runs on, from the workers table: a job no worker can take is refused at submit.

Refused rather than queued with a time-out: the registry already says, at submit time, what the
workers run on, and a 422 naming the devices there are is seen at once by whoever submitted.
"""

from __future__ import annotations

from sqlalchemy import Engine

from app.spec import SpecError
from app.store import workers

# Workers that beat within this long count as the installation's devices: a server restarting its
# workers, or a GPU host rebooting, does not make its devices unknown.
WORKER_MEMORY_SECONDS = 24 * 3600


def accepted_devices(worker_device: str) -> set[str]:
    """The `device` values a worker registered on `worker_device` takes at least (trainer/worker.py's `accepts`):
    a CPU worker takes auto and cpu; a worker on GPU k also takes cuda and cuda:0..k (its host has them)."""
    if not worker_device.startswith("cuda"):
        return {"auto", "cpu"}
    index = int(worker_device.partition(":")[2] or 0)
    return {"auto", "cpu", "cuda", *(f"cuda:{i}" for i in range(index + 1))}


def check_device(device: str, seen: list[str], field: str = "device") -> None:
    """Refuse a device no worker seen in the last day could take (with no worker seen yet, nothing is known: accepted)."""
    if not seen or any(device in accepted_devices(d) for d in seen):
        return
    raise SpecError(
        field,
        f"no worker can run device {device!r}: the workers of the last day run on {', '.join(sorted(set(seen)))}; "
        f"start one with `embedlab worker --device {device}` first, or pick another device",
    )


def check_devices(engine: Engine, devices: set[str], field: str) -> None:
    """`check_device` for each device of a submission, against the workers seen in the last day."""
    seen = workers.devices_seen(engine, WORKER_MEMORY_SECONDS)
    for device in sorted(devices):
        check_device(device, seen, field)


def check_device_count(engine: Engine, count: int, field: str = "devices") -> None:
    """Refuse a job on more devices than any worker seen in the last day offers (`embedlab worker --devices N`):
    it could never be claimed. With no worker seen yet, nothing is known: accepted."""
    most = workers.most_devices_seen(engine, WORKER_MEMORY_SECONDS)
    if count <= 1 or most is None or count <= most:
        return
    raise SpecError(
        field,
        f"no worker offers {count} devices: the most one worker of the last day offers is {most}; "
        f"start one with `embedlab worker --devices {count}` first, or ask for fewer",
    )
