"""Fixtures for the service tests (``tests/app``)."""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from app.storage import DiskObjectStore, ObjectStore, S3ObjectStore
from harness.s3server import S3ServerError, S3ServerInfo, SeaweedS3Server

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from mypy_boto3_s3 import S3Client

    from app.services.context import Context
    from app.services.recognition.heads import HeadTrainer
    from app.settings import Settings
    from ml.pipeline import FacePipeline

logger = logging.getLogger(__name__)

# =============================================================================================
# Storage fixtures
# =============================================================================================

STORE_BACKENDS = ("disk", "s3")

MakeObjectStore = Callable[..., ObjectStore]
"""``make_object_store(**s3_options)``: a fresh, empty store of the test's backend. The options
(e.g. ``page_size=3``) go to :class:`S3ObjectStore` and are ignored by the disk backend."""


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3ServerInfo]:
    """A SeaweedFS S3 server (``weed mini``) for the whole session; started on first use only.

    Fails, never skips, when weed cannot run: CI must exercise the S3 backend.
    """
    server = SeaweedS3Server()
    try:
        info = server.start()
    except S3ServerError as error:
        pytest.fail(f"cannot start the SeaweedFS S3 test server: {error}", pytrace=False)
    try:
        yield info
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_admin_client(s3_server: S3ServerInfo) -> S3Client:
    """A plain boto3 client on the test server, to set up or inspect buckets behind a store's back."""
    return s3_server.client()


@pytest.fixture
def new_s3_bucket(s3_admin_client: S3Client) -> Iterator[Callable[[], str]]:
    """``new_s3_bucket()`` creates an empty bucket with a unique name; all are deleted afterwards."""
    created: list[str] = []

    def create() -> str:
        name = f"test-{uuid.uuid4().hex[:20]}"
        s3_admin_client.create_bucket(Bucket=name)
        created.append(name)
        return name

    yield create
    for name in created:
        try:
            # SeaweedFS deletes non-empty buckets (and frees their volume) in one call.
            s3_admin_client.delete_bucket(Bucket=name)
        except (BotoCoreError, ClientError) as error:
            logger.warning("could not delete test bucket %s: %s", name, error)


@pytest.fixture
def s3_store_factory(
    s3_server: S3ServerInfo, new_s3_bucket: Callable[[], str]
) -> Callable[..., S3ObjectStore]:
    """``s3_store_factory(**options)``: an :class:`S3ObjectStore` on a fresh bucket of the test server."""

    def make(**options: Any) -> S3ObjectStore:
        return S3ObjectStore(
            new_s3_bucket(),
            endpoint_url=s3_server.endpoint_url,
            region=s3_server.region,
            access_key_id=s3_server.access_key_id,
            secret_access_key=s3_server.secret_access_key,
            **options,
        )

    return make


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    """``"disk"`` or ``"s3"``: every test using a store fixture runs once per backend."""
    backend: str = request.param
    return backend


@pytest.fixture
def make_object_store(
    store_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> MakeObjectStore:
    if store_backend == "s3":
        # Looked up only here so that disk-only runs never start weed.
        s3_store_factory: Callable[..., S3ObjectStore] = request.getfixturevalue("s3_store_factory")
    counter = iter(range(1_000_000))

    def make(**s3_options: Any) -> ObjectStore:
        if store_backend == "disk":
            return DiskObjectStore(tmp_path / f"store-{next(counter)}")
        return s3_store_factory(**s3_options)

    return make


@pytest.fixture
def object_store(make_object_store: MakeObjectStore) -> ObjectStore:
    """A fresh, empty store: a new folder under ``tmp_path``, or a new bucket on the test server."""
    return make_object_store()


# =============================================================================================
# API fixtures
# =============================================================================================

# API fixtures: the app with real models on real photos. The face pipeline is built once per
# session and handed to every app (create_app(..., pipeline=...)); stores are fresh per app.
# The app and the models are imported inside the fixtures, so that the storage tests above
# never depend on them.

CAST = ("sheldon", "leonard", "penny", "howard", "raj")
"""The face-api.js Big Bang Theory cast that appears in ``groups/face_api_js__bbt3.jpg``."""


@pytest.fixture(scope="session")
def fast_face_pipeline() -> FacePipeline:
    """Real models with one view per photo: for tests about storage and validation, not accuracy."""
    from ml.config import PipelineConfig
    from ml.factory import build_pipeline

    return build_pipeline(PipelineConfig(n_views=1))


@pytest.fixture(scope="session")
def fast_cast_pipeline(fast_face_pipeline: FacePipeline) -> FacePipeline:
    """One view per photo (fast) at the operator threshold for the face-api.js cast: at the
    calibrated default bbt3 names four of the five (Penny scores 0.36 < 0.41); see
    ``tests.conftest.CAST_UNKNOWN_THRESHOLD``."""
    from tests.conftest import CAST_UNKNOWN_THRESHOLD

    config = dataclasses.replace(
        fast_face_pipeline.config, unknown_threshold=CAST_UNKNOWN_THRESHOLD
    )
    return fast_face_pipeline.with_config(config)


@pytest.fixture(scope="session")
def people_dir(shared_dir: Path) -> Path:
    return shared_dir / "faces" / "people"


@pytest.fixture(scope="session")
def groups_dir(shared_dir: Path) -> Path:
    return shared_dir / "faces" / "groups"


@pytest.fixture(scope="session")
def cast_photos(people_dir: Path) -> dict[str, bytes]:
    """First photo of each cast member (one face each, 150 px grey crops)."""
    return {
        name: (people_dir / f"face_api_js__{name}" / f"{name}1.png").read_bytes() for name in CAST
    }


def is_photo_embedding(key: str) -> bool:
    """FaceNet's embedding of a registration photo, the object that makes the photo count (other
    models' embeddings live one folder down, ``embeddings/{model}/``)."""
    return re.search(r"/embeddings/[^/]+\.npy$", key) is not None


def api_settings(**overrides: Any) -> Settings:
    """Settings for a test app: no ``.env``, defaults unless overridden."""
    from app.settings import Settings

    return Settings(_env_file=None, **overrides)


@contextmanager
def running_app(
    pipeline: FacePipeline, store: ObjectStore, **settings: Any
) -> Iterator[TestClient]:
    """A started app (lifespan run) on ``store``; waits for background head trainings at exit."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(api_settings(**settings), pipeline=pipeline, store=store)
    with TestClient(app) as client:
        yield client
        trainer_of(client).wait_idle(timeout=300)
        context_of(client).backfill.wait_idle(timeout=300)


def context_of(client: TestClient) -> Context:
    """The running app's services (caches, trainer), to look behind the HTTP interface."""
    from fastapi import FastAPI

    app = client.app
    assert isinstance(app, FastAPI)
    context: Context = app.state.context
    return context


def trainer_of(client: TestClient) -> HeadTrainer:
    return context_of(client).trainer


@pytest.fixture(scope="module")
def module_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], ObjectStore]:
    """``module_store(backend)``: a fresh store that lives as long as the test module (to share
    slow registrations between its tests)."""

    def make(backend: str) -> ObjectStore:
        if backend == "disk":
            return DiskObjectStore(tmp_path_factory.mktemp("api-store"))
        server: S3ServerInfo = request.getfixturevalue("s3_server")
        bucket = f"api-{uuid.uuid4().hex[:20]}"
        server.client().create_bucket(Bucket=bucket)
        return S3ObjectStore(
            bucket,
            endpoint_url=server.endpoint_url,
            region=server.region,
            access_key_id=server.access_key_id,
            secret_access_key=server.secret_access_key,
        )

    return make
