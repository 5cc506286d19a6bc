"""The Rollcall service as a real process (``python -m uvicorn app.main:app``) on a free loopback port.

For the fault and load tests: a process can be killed with SIGKILL mid-request and started again,
two can share one bucket, and its memory can be read. Configured only through the environment (no
``.env``: it runs in an empty working folder), exactly as an operator runs it.

::

    with ServiceProcess(s3_environment(info, bucket)) as service:
        httpx.get(service.url + "/readyz")
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from harness.s3server import S3ServerInfo

REPO_ROOT = Path(__file__).resolve().parents[1]

FAST_ENVIRONMENT = {"ROLLCALL_N_VIEWS": "1", "ROLLCALL_LOG_LEVEL": "INFO"}
MODEL_CACHE_VARIABLES = frozenset({"ROLLCALL_MODEL_CACHE", "ROLLCALL_MODEL_CACHE_DIR"})
"""One view per registration photo: these tests are about storage and processes, not accuracy."""


class ServiceStartError(RuntimeError):
    """The service process exited or did not answer in time; carries its log tail."""


def s3_environment(
    endpoint_url: str, access_key_id: str, secret_access_key: str, region: str, bucket: str
) -> dict[str, str]:
    """The operator's S3 variables for a bucket on a (test) server."""
    return {
        "S3_BUCKET_NAME": bucket,
        "S3_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
    }


def s3_environment_for(info: S3ServerInfo, bucket: str) -> dict[str, str]:
    return s3_environment(
        info.endpoint_url, info.access_key_id, info.secret_access_key, info.region, bucket
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceProcess:
    """One uvicorn process serving ``app.main:app``; :meth:`start`, :meth:`kill`, :meth:`start` again.

    The port stays the same across restarts, so clients keep their base URL.
    """

    def __init__(
        self,
        environment: Mapping[str, str],
        *,
        port: int | None = None,
        startup_timeout_s: float = 120.0,
        log_path: Path | None = None,
        python: Path | None = None,
    ) -> None:
        """``python``: the interpreter of the environment to serve from (default: this one's)."""
        self._environment = dict(environment)
        self._python = str(python) if python is not None else sys.executable
        self.port = port or free_port()
        self._startup_timeout_s = startup_timeout_s
        self._work_dir = Path(tempfile.mkdtemp(prefix="rollcall-service-"))
        self.log_path = log_path or self._work_dir / "service.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._launched_at = 0.0
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServiceStartError("the service is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> float:
        """Start the process and wait until it serves ``/healthz`` (models loaded); returns seconds."""
        self.launch()
        return self.wait_until_serving()

    def launch(self) -> None:
        """Start the process without waiting (to start several side by side, then
        :meth:`wait_until_serving` on each). Call it from a thread that outlives the process: on
        Linux the process is killed when the thread that started it ends."""
        if self.running:
            raise ServiceStartError("already running")
        environment = {
            key: value
            for key, value in os.environ.items()
            # Nothing of the developer's own configuration leaks into the service under test, but
            # the model cache the tests were given (the models, not the service's configuration).
            if not key.startswith(("ROLLCALL_", "S3_", "AWS_")) or key in MODEL_CACHE_VARIABLES
        }
        environment.update(FAST_ENVIRONMENT)
        environment.update(self._environment)
        environment.setdefault("ROLLCALL_DATA_DIR", str(self._work_dir / "data"))
        command = [
            self._python,
            "-m",
            "uvicorn",
            "app.main:app",
            "--app-dir",
            str(REPO_ROOT),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
        ]
        self._launched_at = time.monotonic()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._work_dir,
                env=environment,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def wait_until_serving(self) -> float:
        """Wait until the launched process answers ``/healthz``; returns seconds since launch."""
        if self._process is None:
            raise ServiceStartError("the service was not launched")
        started = self._launched_at
        deadline = started + self._startup_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self._process.poll() is not None:
                    raise ServiceStartError(
                        f"service exited with {self._process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + "/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    self.kill()
                    raise ServiceStartError(
                        f"service not up after {self._startup_timeout_s:.0f} s:\n{self.log_tail()}"
                    )
                time.sleep(0.1)
        self.startup_seconds = time.monotonic() - started
        return self.startup_seconds

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL: no clean-up runs) and wait for the process to end."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        """An orderly stop (SIGTERM, as systemd or docker would), for good: its folder is removed."""
        self.kill(signal.SIGTERM)
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def rss_bytes(self) -> int:
        """Resident memory of the service process."""
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process(self.pid).memory_info().rss)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL the service if the test process dies first."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
