"""`embedlab serve | worker | submit | search | import | login | weights | user | db`: the command line."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from app.config import Settings

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="embedlab: training server and dashboard for deep metric learning.")
log = logging.getLogger("embedlab")

STARTED_SECONDS = 60.0  # a worker that exits sooner than this after its start failed to start
SERVE_PID = "EMBEDLAB_SERVE_PID"


class WorkerPool:
    """Embedded worker processes for `serve`; a worker that dies is started again."""

    def __init__(self, count: int, threads: int):
        self.count, self.threads = count, threads
        self.procs: list[subprocess.Popen] = []
        self.stopping = threading.Event()

    def _spawn(self, index: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "app.cli", "worker", "--threads", str(self.threads)]
        # SERVE_PID: the worker asks the kernel for SIGTERM when this process ends, even by kill -9,
        # so a restarted `serve` never finds the old workers still running beside its new ones.
        return subprocess.Popen(cmd, env={**os.environ, "EMBEDLAB_WORKER_INDEX": str(index), SERVE_PID: str(os.getpid())})

    def start(self) -> None:
        self.procs = [self._spawn(i) for i in range(self.count)]
        threading.Thread(target=self._supervise, daemon=True, name="worker-supervisor").start()

    def _supervise(self) -> None:
        """Restart workers that die; one that keeps dying at start is restarted less and less often (2 s, 4 s, ... 5 min),
        said once, instead of every few seconds."""
        from app.backoff import Backoff

        started = [time.monotonic()] * len(self.procs)
        backoffs = [Backoff(log, first=2.0, cap=300.0) for _ in self.procs]
        due: list[float | None] = [None] * len(self.procs)  # when an exited worker is started again
        while not self.stopping.wait(1.0):
            now = time.monotonic()
            for i, p in enumerate(self.procs):
                if self.stopping.is_set():
                    break
                if p.poll() is None:
                    if now - started[i] >= STARTED_SECONDS:
                        backoffs[i].succeeded(f"worker {i} running")
                    continue
                if due[i] is None:
                    if now - started[i] >= STARTED_SECONDS:  # it ran a while: a crash, not a failing start
                        log.warning("worker %d exited with %s; starting it again", i, p.returncode)
                        due[i] = now
                    else:
                        due[i] = now + backoffs[i].failed(
                            f"worker {i} exits at start (exit status {p.returncode}; its messages above say why)"
                        )
                if now >= due[i]:
                    self.procs[i], started[i], due[i] = self._spawn(i), now, None

    def stop(self, grace: float = 30.0) -> None:
        self.stopping.set()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")


def open_database(settings: Settings, *, create: bool = True):
    """The engine, with the schema checked; a clear one-line error and exit 1 instead of a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.store.db import get_engine, init_db, sqlite_location_problem
    from app.store.schema import SchemaBehind

    safe_url = settings.db_url.split("@")[-1] if "@" in settings.db_url else settings.db_url
    if problem := sqlite_location_problem(settings.db_url):
        typer.echo(f"embedlab: {problem}", err=True)
        raise typer.Exit(1)
    try:
        engine = get_engine(settings.db_url)
        if create:
            init_db(engine)
        return engine
    except SchemaBehind as e:
        typer.echo(f"embedlab: {e}", err=True)
    except (SQLAlchemyError, OSError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        typer.echo(f"embedlab: cannot use the database at {safe_url}: {reason}", err=True)
    raise typer.Exit(1)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to this version of embedlab."""
    from app.store import schema

    engine = open_database(Settings(), create=False)
    before = schema.current(engine)
    schema.upgrade(engine)
    typer.echo(f"database schema: {before or 'empty'} -> {schema.current(engine)}")


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


user_cli = typer.Typer(help="Accounts and API tokens (for EMBEDLAB_AUTH=on).", no_args_is_help=True)
cli.add_typer(user_cli, name="user")


@user_cli.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name")],
    admin: Annotated[bool, typer.Option("--admin", help="May cancel anyone's jobs")] = False,
    password: Annotated[bool, typer.Option("--password", help="Also set a password for the browser (asked for)")] = False,
) -> None:
    """Create a user; prints the API token last (it is shown only once)."""
    from app.auth import create_user

    engine = open_database(Settings())
    secret = typer.prompt("password", hide_input=True, confirmation_prompt=True) if password else None
    try:
        user, token = create_user(engine, name, password=secret, is_admin=admin)
    except ValueError as e:
        typer.echo(f"embedlab: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {'admin ' if user['is_admin'] else ''}user {user['name']}; API token (shown once):")
    typer.echo(token)


weights_cli = typer.Typer(help="Pretrained ImageNet weights under EMBEDLAB_HOME/weights.", no_args_is_help=True)
cli.add_typer(weights_cli, name="weights")


@weights_cli.command("fetch")
def weights_fetch(names: Annotated[list[str], typer.Argument(help="Backbones: resnet18, resnet50, vit_b_16, timm:<model>")]) -> None:
    """Download weights once, checked against the publisher's hash; a present, valid file is kept."""
    from app.weights import fetch_with_progress

    raise typer.Exit(fetch_with_progress(Settings(), names))


@weights_cli.command("list")
def weights_list() -> None:
    """Each backbone and whether its weights are on this machine."""
    from app.weights import listing

    for row in listing(Settings()):
        state = (
            "present " + row["path"] if row["weights_present"] else ("missing" if row["pretrained_available"] else "no published weights")
        )
        typer.echo(f"{row['name']:<28} {state}")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Embedded worker processes (0: the API alone)", min=0)] = 1,
) -> None:
    """Run the API and dashboard, with embedded trainer workers."""
    import uvicorn

    from app.demo import queue_demo
    from app.main import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    if settings.auth == "off" and not is_loopback(host):
        typer.echo(
            f"embedlab: refusing to serve {host} without accounts: anyone on the network could run jobs and read files. "
            "Create an admin with `embedlab user add NAME --admin`, then start with EMBEDLAB_AUTH=on.",
            err=True,
        )
        raise typer.Exit(1)
    settings.home_path.mkdir(parents=True, exist_ok=True)
    engine = open_database(settings)
    queue_demo(engine, settings)  # an empty database gets a quick finished job and a longer live one
    pool = WorkerPool(workers, settings.threads)  # 0: workers share the cores among the busy ones
    if workers:
        pool.start()
    typer.echo(f"embedlab on http://{host}:{port}  (home {settings.home_path}, {workers} worker(s))")
    # uvicorn re-raises the signal that stopped it once it has shut down; with this handler in
    # place that becomes a normal exit, so the workers below are stopped (and requeue their jobs).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
    finally:
        pool.stop()


@cli.command()
def worker(
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto")] = "auto",
    threads: Annotated[
        int,
        typer.Option(
            help="torch threads, split among its running jobs' devices (0: a fair share of the cores per busy device of this host)", min=0
        ),
    ] = 0,
    max_jobs: Annotated[int, typer.Option(help="Exit after this many jobs (0: never)", min=0)] = 0,
    exit_when_idle: Annotated[bool, typer.Option(help="Exit when the queue is empty")] = False,
    devices: Annotated[
        int,
        typer.Option(
            help="Devices it offers: N GPUs from --device, or N CPU processes, shared among jobs whose `devices` add up to at most N",
            min=1,
        ),
    ] = 1,
) -> None:
    """Run a trainer worker against EMBEDLAB_DATABASE_URL."""
    from app.lifeline import die_with_parent
    from trainer.worker import main

    if serve_pid := os.environ.pop(SERVE_PID, None):  # started by `serve`: end with it (SIGTERM requeues the job)
        die_with_parent(signal.SIGTERM, int(serve_pid))

    open_database(Settings())
    raise typer.Exit(
        main(device=device, threads=threads or None, max_jobs=max_jobs or None, exit_when_idle=exit_when_idle, devices=devices)
    )


ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar=["EMBEDLAB_SERVER", "EMBEDLAB_URL"],
        show_default=False,
        help="Server address [default: the saved login's, else http://127.0.0.1:8000]",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="EMBEDLAB_TOKEN", show_default=False, help="API token (from `embedlab user add`) [default: the saved login's]"
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"embedlab: {message}", err=True)
    return typer.Exit(code)


@cli.command()
def login(server: ServerOption = None, token: TokenOption = None) -> None:
    """Check an API token against a server and save both for submit (in a file only you can read)."""
    from app.client import Client, ClientError, save_login

    token = token or typer.prompt("API token", hide_input=True)
    client = Client.resolve(server, token)
    try:
        r = client.request("GET", "/api/me")
    except ClientError as e:
        raise fail(str(e)) from None
    if r.status_code != 200:
        raise fail(f"{client.server} answered {r.status_code} to GET /api/me; is it an embedlab server?")
    me = r.json()
    path = save_login(client.server, token)
    who = f"as {me['name']}" if me.get("auth") else "(the server has accounts off: no token needed)"
    typer.echo(f"signed in to {client.server} {who}; saved in {path}")


def post_spec(spec_file: str, path: str, server: str | None, token: str | None):
    """POST a spec file (or standard input) to `path`: the client and the created resource, or a one-line error and exit."""
    from app.client import Client, ClientError, read_spec, refusal_lines

    try:
        text = read_spec(spec_file, sys.stdin.read() if spec_file == "-" else None)
        client = Client.resolve(server, token)
        r = client.request("POST", path, content=text, headers={"Content-Type": "application/json"})
    except ClientError as e:
        raise fail(str(e), 2 if str(e).startswith("cannot reach") else 1) from None
    if r.status_code != 201:
        for line in refusal_lines(r):
            typer.echo(f"refused: {line}", err=True)
        raise typer.Exit(1)
    return client, r.json()


@cli.command()
def submit(
    spec_file: Annotated[str, typer.Argument(help="Job spec as JSON ('-' for standard input)")],
    wait: Annotated[bool, typer.Option(help="Show progress until the job ends; exit 0 only if it succeeded")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Submit a job to a running server and print its id."""
    from app.client import ClientError

    client, job = post_spec(spec_file, "/api/jobs", server, token)
    typer.echo(job["id"])
    if not wait:
        return
    with typer.progressbar(length=job["progress"]["total"], label=f"job {job['id']}", file=sys.stderr) as bar:
        shown = 0
        while job["status"] in ("queued", "running"):
            time.sleep(1.0)
            try:
                job = client.request("GET", f"/api/jobs/{job['id']}").json()
            except ClientError as e:
                raise fail(str(e), 2) from None
            bar.update(job["progress"]["step"] - shown)
            shown = job["progress"]["step"]
    summary = ", ".join(f"{k}={v:.4f}" for k, v in job["metrics"].items() if v is not None)
    typer.echo(
        f"job {job['id']} {job['status']}" + (f": {job['error']}" if job["error"] else "") + (f" ({summary})" if summary else ""), err=True
    )
    raise typer.Exit(0 if job["status"] == "succeeded" else 1)


@cli.command("search")
def search_command(
    spec_file: Annotated[
        str, typer.Argument(help="Search spec as JSON: base, space, trials, parallel, sampler, pruner, seeds ('-': stdin)")
    ],
    wait: Annotated[bool, typer.Option(help="Show trials as they end until the search finishes; exit 0 if a trial completed")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Start a search (Optuna sampler + pruner over queued jobs) on a running server and print its id."""
    from app.client import ClientError

    client, created = post_spec(spec_file, "/api/searches", server, token)
    search_id = created["id"]
    typer.echo(search_id)
    if not wait:
        return
    shown: set[int] = set()
    while True:
        try:
            found = client.request("GET", f"/api/searches/{search_id}").json()
        except ClientError as e:
            raise fail(str(e), 2) from None
        for t in found["trial_list"]:
            if t["state"] != "running" and t["number"] not in shown:
                shown.add(t["number"])
                value = f"{t['value']:.4f}" if t["value"] is not None else "-"
                pruned = f" pruned at step {t['pruned_at']}" if t["pruned_at"] is not None else ""
                typer.echo(f"trial {t['number']} {t['state']}: {t['params']} value {value}, {t['steps']} steps{pruned}", err=True)
        if found["status"] != "running":
            break
        time.sleep(2.0)
    budget, best = found["budget"], found["best"]
    spent = f"{budget['steps_spent']} training steps" + (
        f" ({budget['fraction']:.0%} of {budget['grid_steps']} for the same trials trained to the end)" if budget["grid_steps"] else ""
    )
    typer.echo(
        f"search {search_id} {found['status']}: {spent}; best "
        + (f"trial {best['number']} {best['params']} = {best['value']:.4f}" if best else "none"),
        err=True,
    )
    raise typer.Exit(0 if best else 1)


@cli.command("import")
def import_command(
    embeddings: Annotated[Path, typer.Argument(help=".npy, .npz, .csv, .tsv (TensorBoard's embeddings.tsv) or .parquet")],
    labels: Annotated[
        Path | None, typer.Option(help="Labels: .npy/.npz, .csv/.tsv (TensorBoard's metadata.tsv) or .parquet, one row a point")
    ] = None,
    images: Annotated[
        str | None,
        typer.Option(help="An image folder on the server, inside its data roots: one image a point (sorted, or named by the labels)"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Collection name [default: the file's]")] = None,
    space: Annotated[str, typer.Option(help="cosine (1 - cos: CLIP and most models) or euclidean (L2)")] = "cosine",
    server_paths: Annotated[
        bool, typer.Option("--server-paths", help="Send the files' paths instead of uploading them (they lie in the server's data roots)")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait until the layout is done; exit 0 only if it succeeded")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Import embeddings from elsewhere as a collection, explored like a job's; prints its id and page."""
    from app.client import Client, ClientError, refusal_lines

    form = {"space": space, **({"name": name} if name else {}), **({"images": images} if images else {})}
    opened = []
    try:
        client = Client.resolve(server, token)
        uploads: dict[str, tuple[str, object]] = {}
        for field, path in (("embeddings", embeddings), ("labels", labels)):
            if path is None:
                continue
            if server_paths:
                form[f"{field}_path"] = str(path.expanduser().resolve())
            else:
                try:
                    f = open(path, "rb")  # noqa: SIM115 - closed below, after the upload
                except OSError as e:
                    raise fail(f"cannot read {path}: {e.strerror or e}") from None
                opened.append(f)
                uploads[field] = (path.name, f)
        r = client.request("POST", "/api/collections", data=form, files=uploads or None, timeout=None)
    except ClientError as e:
        raise fail(str(e), 2 if str(e).startswith("cannot reach") else 1) from None
    finally:
        for f in opened:
            f.close()
    if r.status_code != 201:
        for line in refusal_lines(r):
            typer.echo(f"refused: {line}", err=True)
        raise typer.Exit(1)
    found = r.json()
    typer.echo(found["id"])
    typer.echo(f"{found['points']:,} points x {found['dims']} dimensions; explore at {client.server}{found['explore_url']}", err=True)
    if not wait:
        return
    shown = None
    while found["status"] == "laying out":
        if found["phase"] and found["phase"] != shown:
            shown = found["phase"]
            typer.echo(f"laying out: {shown}", err=True)
        time.sleep(1.0)
        try:
            found = client.request("GET", f"/api/collections/{found['id']}").json()
        except ClientError as e:
            raise fail(str(e), 2) from None
    typer.echo(f"collection {found['id']} {found['status']}" + (f": {found['error']}" if found["error"] else ""), err=True)
    raise typer.Exit(0 if found["status"] == "ready" else 1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
