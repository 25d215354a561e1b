"""One settings object for every process of the service, read from the environment.

The defaults are the embedded setup: a SQLite database and a server-less broker
on a second SQLite file, both under ./var/ of the repository."""
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path(__file__).resolve().parents[1] / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    DATABASE_URL: str = f"sqlite:///{VAR_DIR / 'service.db'}"
    BROKER_URL: str = f"sqla+sqlite:///{VAR_DIR / 'broker.db'}"
    BROKER_POLLING_SECONDS: float = Field(0.02, gt=0, le=5,
                                          description="how often a worker polls the server-less SQLite broker")
    HOST: str = "127.0.0.1"
    PORT: int = 8000

    AUTH_REQUIRED: bool = False
    API_KEY_SECRET: str = Field("insecure-dev-secret", min_length=8,  # refused with AUTH_REQUIRED=true
                                description="server secret that keys the HMAC of stored API keys")

    MAX_STEPS: int = 100_000
    MAX_SAMPLES: int = 10_000
    MAX_LAYER_WIDTH: int = 256
    MAX_LAYERS: int = 16
    MAX_NODES_PER_STEP: int = 2_000_000
    MAX_BODY_BYTES: int = 2_000_000
    DEFAULT_TIME_LIMIT_SECONDS: float = 600.0
    MAX_TIME_LIMIT_SECONDS: float = 3600.0

    WORKER_METRICS_PORT: int = Field(0, ge=0, le=65535, description="a worker's Prometheus port; 0 = none")
    JSON_LOGS: bool = False

    HEARTBEAT_SECONDS: float = 2.0
    STALE_AFTER_SECONDS: float = 15.0
    SWEEP_SECONDS: float = 5.0
    REDELIVER_QUEUED_AFTER_SECONDS: float = 60.0
    MAX_ATTEMPTS: int = 3
    CHECKPOINT_SECONDS: float = 5.0  # a running job saves its training state this often (0: never by time)
    CHECKPOINT_STEPS: int = 0  # ... and/or every this many steps (0: never by steps)

    RATE_LIMIT_PER_MINUTE: int = 600
    AUTH_FAILURES_PER_MINUTE: int = Field(120, ge=0, description=(
        "refused keys (or missing ones where keys are required) per client address in any 60 s before "
        "its attempts get 429; 0 = no limit"))
    PREDICT_CONCURRENCY: int = 4           # predictions computed at once in one API process
    PREDICT_PER_OWNER: int = 2             # of which one owner's
    PREDICT_CACHE_BYTES: int = 64_000_000  # loaded models kept by job id
    MAX_ACTIVE_JOBS_PER_OWNER: int = 100
    MAX_TRIALS: int = 1000  # per sweep
    MAX_PARALLELISM: int = 16  # trials of one sweep queued or running at once

    EVENTS_POLL_SECONDS: float = Field(0.5, gt=0, description="how often a /jobs/{id}/events stream reads the store")
    EVENTS_MAX_SECONDS: float = Field(120.0, gt=0, description="a stream's lifetime; the client then reconnects")
    BOUNDARY_MAX_GRID: int = Field(80, ge=2, description="cells per side of /jobs/{id}/boundary at most")


@lru_cache
def get_settings() -> Settings:
    return Settings()
