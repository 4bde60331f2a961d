"""Worker processes started and stopped by the benchmark and the load replay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.fernet import Fernet

from workers.settings import Settings


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment with ``settings`` as ``OMVANT_*`` for the workers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMVANT_")}
    env.update(
        OMVANT_BROKER_URL=settings.broker_url,
        OMVANT_DATABASE_URL=settings.database_url,
        OMVANT_QUEUE_PREFIX=settings.queue_prefix,
        OMVANT_CHUNK_SIZE=str(settings.chunk_size),
        OMVANT_BULK_CHUNK_SIZE=str(settings.bulk_chunk_size),
        OMVANT_SEED=str(settings.seed),
        OMVANT_BLOB_DIR=str(settings.blob_dir),
        OMVANT_LOG_LEVEL="WARNING",
        OMVANT_SIM_LATENCY_MS=str(settings.sim_latency_ms),
        OMVANT_SIM_FAILURE_RATE=str(settings.sim_failure_rate),
        OMVANT_MAX_RETRIES=str(settings.max_retries),
        dramatiq_worker_timeout=str(settings.idle_poll_ms),
        # the benchmark's and load replay's own workers: a throwaway key if none is set
        OMVANT_ANSWER_KEY=(
            settings.answer_key.get_secret_value()
            if settings.answer_key
            else Fernet.generate_key().decode()
        ),
    )
    env.update(extra)
    return env


class DramatiqWorkers:
    """``python -m dramatiq MODULE`` with the given processes, threads and queues."""

    def __init__(
        self,
        module: str,
        queues: Sequence[str],
        env: Mapping[str, str],
        *,
        processes: int,
        threads: int,
        log_path: Path,
        nice: int = 0,
    ) -> None:
        """``nice``: added to the processes' niceness (lower CPU priority), as ``omvant worker
        --nice`` does; dramatiq's worker processes inherit it."""
        self.log_path = log_path
        self.threads = threads
        self._log = log_path.open("ab")
        argv = [sys.executable, "-m", "dramatiq", module, "--processes", str(processes)]
        argv += ["--threads", str(threads), "--queues", *queues]
        self._told = False  # told to stop once: dramatiq takes a second SIGTERM as "kill now"
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,  # noqa: PLW1509 - only os.nice
        )

    @property
    def pid(self) -> int:
        """The dramatiq main process (the root of the worker processes' tree)."""
        return self.process.pid

    def terminate(self) -> None:
        """SIGTERM dramatiq's main process, which passes it on to its worker processes (``stop``
        waits for them). Not the whole group: a worker process told twice exits at once, without
        its shutdown hooks (``producers/bench_profile.py`` writes its profile in one)."""
        if self.process.poll() is None and not self._told:
            self.process.send_signal(signal.SIGTERM)
            self._told = True

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the workers; SIGKILL their process group if they take longer than ``timeout``."""
        self.terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        self._log.close()

    def __enter__(self) -> DramatiqWorkers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
