"""One settings object for the server, the workers and the CLI (env prefix EMBEDLAB_)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import files


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMBEDLAB_", extra="ignore")

    home: Path = Path("./var")
    # Empty means a SQLite file under `home`.
    database_url: str = ""
    # Folders an `imagefolder` job may read, separated by os.pathsep; `home/datasets` is always one.
    data_roots: str = ""
    # A claimed job belongs to its worker until the lease expires; heartbeats renew it.
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 2.0
    max_attempts: int = 3
    # Seconds before a job that raised is tried again, doubled at each attempt.
    retry_backoff_seconds: float = 5.0
    # A job on several devices: how long a rank waits for the others in a collective (the batch, the gradients,
    # the stop decision) before the attempt fails on every rank. Rank 0 evaluates while the others wait: keep
    # it above the longest evaluation. A rank that dies is noticed at once (its peers see the closed connection).
    collective_timeout_seconds: float = Field(600.0, gt=0)
    # Queue a small demo job when `serve` starts on an empty database.
    demo: bool = True
    # Threads per training process; 0 picks cores // embedded workers.
    threads: int = 0
    # "on": accounts and tokens (a shared server); "off": one local user, loopback only.
    auth: Literal["off", "on"] = "off"
    # Running jobs one user may hold at once (0: no limit), so one person cannot take every GPU.
    max_running_per_user: int = 0
    # No network: workers never download weights and `pretrained: true` needs the file present at submit.
    offline: bool = False
    # Where torchvision's ImageNet weight files are downloaded from (tests point it at a loopback server).
    weights_url: str = "https://download.pytorch.org/models"
    # The Hugging Face hub timm's weights come from; None: the hub client's own default (HF_ENDPOINT or huggingface.co).
    hub_url: str | None = None

    # Memory one job attempt may use, in MB (its process's data segment); 0: 80% of this host's memory
    # (or its cgroup's limit) shared among the live workers on the host. Also the submit-time limit of
    # app.costs' estimate: set it explicitly when the API and the workers run on different machines.
    job_memory_mb: int = Field(0, ge=0)
    # Jobs (trials x seeds) one search may run, so one search cannot fill the queue for days.
    max_search_trials: int = 200

    @cached_property
    def home_path(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{files.database_file(self.home_path)}"

    @property
    def data_root_paths(self) -> list[Path]:
        roots = [files.datasets_dir(self.home_path)]
        roots += [Path(p).expanduser().resolve() for p in self.data_roots.split(os.pathsep) if p.strip()]
        return roots

    def job_dir(self, job_id: int) -> Path:
        return files.job_dir(self.home_path, job_id)

    def sweep_dir(self, sweep_id: int) -> Path:
        return files.sweep_dir(self.home_path, sweep_id)
