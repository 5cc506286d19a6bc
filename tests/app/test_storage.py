"""Behaviour of the object stores; the shared tests run on disk and on a real SeaweedFS S3 server."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.storage import (
    DiskObjectStore,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    S3ObjectStore,
    StorageUnavailableError,
    create_object_store,
    normalize_prefix,
    validate_key,
)
from app.storage.disk import TEMP_PREFIX
from harness.s3server import S3ServerError, S3ServerInfo, SeaweedS3Server
from tests.app.conftest import MakeObjectStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _payload(seed: str, size: int) -> bytes:
    """Deterministic bytes that differ for every seed (so a mixed-up object cannot pass)."""
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _run_together(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Runs ``work(i)`` in ``count`` threads released at the same instant; returns their errors."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index)
        except BaseException as error:
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "worker threads hung"
    return errors


# --- key grammar (no store needed) ----------------------------------------------------------

BAD_KEYS = [
    "",
    "/abs.json",
    "a//b.json",
    "a/../b.json",
    "..",
    "../escape.json",
    "a/./b.json",
    "a\\b.json",
    "..\\escape",
    "a/b/",
    "Upper/b.json",
    ".hidden",
    f"a/{TEMP_PREFIX}123",
    "a b.json",
    "caf\u00e9.json",
    "nul\x00.json",
    "x" * 1025,
    "a/" + "x" * 256,
]
BAD_PREFIXES = ["/", "/a", "a//", "a//b", "..", "a/../b", "a\\b", "A", ".git"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_validate_key_rejects(key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)


@pytest.mark.parametrize(
    "key", ["a", "classes/c1/class.json", "x/embeddings/p-1_2.npy", "00000001.safetensors"]
)
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


def test_prefix_is_a_whole_folder() -> None:
    assert normalize_prefix("") == ""
    assert normalize_prefix("classes/c1") == "classes/c1/"
    assert normalize_prefix("classes/c1/") == "classes/c1/"
    for prefix in BAD_PREFIXES:
        with pytest.raises(ValueError):
            normalize_prefix(prefix)


# --- behaviour shared by both backends --------------------------------------------------------


def test_store_satisfies_protocol(object_store: ObjectStore) -> None:
    assert isinstance(object_store, ObjectStore)
    assert object_store.description
    object_store.ping()


def test_put_get_roundtrip(object_store: ObjectStore) -> None:
    key = "classes/c1/students/s1/embeddings/p1.npy"
    payload = bytes(range(256)) * 257
    object_store.put(key, payload)
    object_store.put("empty.bin", b"", content_type="text/plain")

    assert object_store.get(key) == payload
    assert object_store.get("empty.bin") == b""
    assert object_store.exists(key)
    assert object_store.exists("empty.bin")
    assert not object_store.exists("classes/c1/students/s1/embeddings/p2.npy")
    assert not object_store.exists("classes/c1")  # a folder is not an object


def test_overwrite_replaces_whole_object(object_store: ObjectStore) -> None:
    object_store.put("doc.json", _payload("long", 50_000))
    object_store.put("doc.json", b"short")
    assert object_store.get("doc.json") == b"short"


def test_get_missing_raises_not_found(object_store: ObjectStore) -> None:
    object_store.put("classes/c1/class.json", b"{}")
    for missing in ("classes/c2/class.json", "classes/c1", "classes"):
        with pytest.raises(ObjectNotFoundError) as raised:
            object_store.get(missing)
        assert isinstance(raised.value, KeyError)


def test_list_returns_full_sorted_keys_under_a_folder(object_store: ObjectStore) -> None:
    keys = ["a/1.json", "a/b/2.json", "a/b/c/3.json", "ab/4.json", "a-b/5.json", "z.json"]
    for key in reversed(keys):
        object_store.put(key, key.encode())

    under_a = ["a/1.json", "a/b/2.json", "a/b/c/3.json"]
    assert object_store.list("a") == under_a
    assert object_store.list("a/") == under_a  # "ab/" and "a-b/" share the string prefix only
    assert object_store.list("a/b") == ["a/b/2.json", "a/b/c/3.json"]
    assert object_store.list("") == sorted(keys)
    assert object_store.list("nothing/here") == []
    assert object_store.list("z.json") == []  # an object is not a folder


def test_listing_paginates(make_object_store: MakeObjectStore) -> None:
    store = make_object_store(page_size=3)
    many = [f"many/k{i:02d}.json" for i in range(20)]
    folders = [f"f{i}" for i in range(7)]
    for key in many:
        store.put(key, b"1")
    for folder in folders:
        store.put(f"kids/{folder}/x.json", b"1")

    assert store.list("many") == many
    assert store.list_children("kids") == folders
    assert store.delete_prefix("many") == len(many)  # several batched deletes on S3
    assert store.list("many") == []
    assert store.list("") == [f"kids/{folder}/x.json" for folder in folders]


def test_list_versions_tags_change_when_an_object_is_written_again(
    object_store: ObjectStore,
) -> None:
    object_store.put("v/a.json", b"first")
    object_store.put("v/b.json", b"other")
    object_store.put("w/c.json", b"elsewhere")
    before = object_store.list_versions("v")
    assert list(before) == object_store.list("v") == ["v/a.json", "v/b.json"]
    assert object_store.list_versions("v") == before  # nothing written: the same tags
    time.sleep(0.01)  # S3 stamps writes to the millisecond
    object_store.put("v/a.json", b"second!")
    after = object_store.list_versions("v")
    assert after["v/a.json"] != before["v/a.json"]
    assert after["v/b.json"] == before["v/b.json"]
    object_store.delete("v/b.json")
    assert list(object_store.list_versions("v")) == ["v/a.json"]


def test_list_children_names_immediate_folders(object_store: ObjectStore) -> None:
    for key in ["cls/a/x.json", "cls/b/y/z.json", "cls/c-d/w.json", "cls/top.json", "other.json"]:
        object_store.put(key, b"1")

    assert object_store.list_children("cls") == ["a", "b", "c-d"]  # top.json is not a folder
    assert object_store.list_children("cls/") == ["a", "b", "c-d"]
    assert object_store.list_children("") == ["cls"]
    assert object_store.list_children("cls/b") == ["y"]
    assert object_store.list_children("cls/a") == []
    assert object_store.list_children("missing") == []


def test_list_children_forgets_emptied_folders(object_store: ObjectStore) -> None:
    # SeaweedFS keeps emptied folders as common prefixes for minutes; the store must not.
    for key in ["cls/a/x.json", "cls/b/y/z.json", "cls/c/w.json"]:
        object_store.put(key, b"1")

    object_store.delete("cls/a/x.json")
    assert object_store.delete_prefix("cls/b") == 1
    assert object_store.list_children("cls") == ["c"]

    object_store.delete("cls/c/w.json")
    assert object_store.list_children("") == []
    assert object_store.list("") == []


def test_delete_is_idempotent(object_store: ObjectStore) -> None:
    object_store.put("a/b.json", b"1")
    object_store.delete("a/b.json")
    assert not object_store.exists("a/b.json")
    with pytest.raises(ObjectNotFoundError):
        object_store.get("a/b.json")
    object_store.delete("a/b.json")
    object_store.delete("never/was.json")
    object_store.delete("a")  # a key that is not an object


def test_delete_prefix_removes_only_that_folder(object_store: ObjectStore) -> None:
    doomed = ["classes/c1/class.json", "classes/c1/s/1.json", "classes/c1/s/2/3.npy"]
    kept = ["classes/c1.json", "classes/c10/class.json", "classes/c2/class.json"]
    for key in doomed + kept:
        object_store.put(key, b"1")

    assert object_store.delete_prefix("classes/c1") == len(doomed)
    assert object_store.list("") == sorted(kept)
    assert object_store.list_children("classes") == ["c10", "c2"]
    assert object_store.delete_prefix("classes/c1") == 0
    assert object_store.delete_prefix("nothing") == 0


def test_invalid_keys_and_prefixes_are_rejected(object_store: ObjectStore) -> None:
    object_store.put("ok.json", b"1")
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            object_store.put(key, b"x")
        with pytest.raises(ValueError):
            object_store.put(key, b"x", if_absent=True)
        with pytest.raises(ValueError):
            object_store.get(key)
        with pytest.raises(ValueError):
            object_store.exists(key)
        with pytest.raises(ValueError):
            object_store.delete(key)
    for prefix in BAD_PREFIXES:
        with pytest.raises(ValueError):
            object_store.list(prefix)
        with pytest.raises(ValueError):
            object_store.list_children(prefix)
        with pytest.raises(ValueError):
            object_store.delete_prefix(prefix)
    assert object_store.list("") == ["ok.json"]


def test_put_if_absent_creates_once(object_store: ObjectStore) -> None:
    object_store.put("locks/a.json", b"first", if_absent=True)
    with pytest.raises(ObjectExistsError):
        object_store.put("locks/a.json", b"second", if_absent=True)
    assert object_store.get("locks/a.json") == b"first"

    object_store.put("locks/a.json", b"third")  # a plain put still overwrites
    assert object_store.get("locks/a.json") == b"third"
    object_store.delete("locks/a.json")
    object_store.put("locks/a.json", b"fourth", if_absent=True)
    assert object_store.get("locks/a.json") == b"fourth"


def test_put_if_absent_race_has_exactly_one_winner(object_store: ObjectStore) -> None:
    creators = 8
    for round_ in range(3):
        key = f"race/{round_}/lock.bin"
        payloads = [_payload(f"{round_}-{i}", 64 * 1024) for i in range(creators)]
        winners: list[int] = []

        def create(
            index: int,
            key: str = key,
            payloads: list[bytes] = payloads,
            winners: list[int] = winners,
        ) -> None:
            try:
                object_store.put(key, payloads[index], if_absent=True)
            except ObjectExistsError:
                return
            winners.append(index)

        assert _run_together(creators, create) == []
        assert len(winners) == 1, f"round {round_}: winners {winners}"
        assert object_store.get(key) == payloads[winners[0]]


def test_concurrent_writers_of_different_keys_all_survive(object_store: ObjectStore) -> None:
    writers = 20
    keys = [f"parallel/w{i:02d}/data.bin" for i in range(writers)]

    def write(index: int) -> None:
        object_store.put(keys[index], _payload(keys[index], 32 * 1024))

    assert _run_together(writers, write) == []
    assert object_store.list("parallel") == keys
    for key in keys:
        assert object_store.get(key) == _payload(key, 32 * 1024)


def test_readers_never_see_a_partial_object(object_store: ObjectStore) -> None:
    # Two versions of different sizes and content: a torn or truncated read matches neither.
    versions = [_payload("A", 3 * 1024 * 1024), _payload("B", 2 * 1024 * 1024 + 17)]
    key = "big/object.bin"
    object_store.put(key, versions[0])
    writer_done = threading.Event()
    bad_reads: list[int] = []
    reads = [0]

    def read_until_done() -> None:
        while not writer_done.is_set():
            data = object_store.get(key)
            reads[0] += 1
            if data not in versions:
                bad_reads.append(len(data))

    readers = [threading.Thread(target=read_until_done) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for i in range(12):
            object_store.put(key, versions[(i + 1) % 2])
    finally:
        writer_done.set()
        for reader in readers:
            reader.join(timeout=60)
    assert reads[0] > 0
    assert bad_reads == [], f"{len(bad_reads)} partial reads of {reads[0]}"


# --- disk backend -----------------------------------------------------------------------------


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_disk_layout_is_the_key_path(tmp_path: Path) -> None:
    store = DiskObjectStore(tmp_path)
    store.put("a/b/c.json", b"{}")
    store.put("a/b/c.json", b'{"v": 2}')
    store.put("a/d.npy", b"x", if_absent=True)
    assert (tmp_path / "a" / "b" / "c.json").read_bytes() == b'{"v": 2}'
    assert _files_under(tmp_path) == ["a/b/c.json", "a/d.npy"]  # no temp files left behind
    assert store.description == f"disk:{tmp_path}"


def test_disk_list_ignores_temp_and_foreign_files(tmp_path: Path) -> None:
    store = DiskObjectStore(tmp_path)
    store.put("a/x.json", b"1")
    (tmp_path / "a" / f"{TEMP_PREFIX}abc").write_bytes(b"half")
    (tmp_path / "a" / "Foreign.TXT").write_bytes(b"?")
    (tmp_path / "a" / ".hidden").mkdir()
    (tmp_path / "a" / ".hidden" / "y.json").write_bytes(b"?")
    (tmp_path / "empty").mkdir()

    assert store.list("") == ["a/x.json"]
    assert store.list_children("") == ["a"]  # "empty" holds no object


def test_disk_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = DiskObjectStore(tmp_path / "root")
    store.put("a/b/c/d.json", b"1")
    store.put("a/e.json", b"1")
    store.delete("a/b/c/d.json")
    assert not (tmp_path / "root" / "a" / "b").exists()
    assert (tmp_path / "root" / "a" / "e.json").is_file()

    store.put("a/f/g/h.json", b"1")
    assert store.delete_prefix("a") == 2
    assert list((tmp_path / "root").iterdir()) == []
    store.ping()  # the root itself stays


def test_disk_key_cannot_be_both_object_and_folder(tmp_path: Path) -> None:
    store = DiskObjectStore(tmp_path)
    store.put("a/b", b"1")
    with pytest.raises(ValueError):
        store.put("a/b/c", b"2")
    store.put("x/y/z", b"3")
    with pytest.raises(ValueError):
        store.put("x/y", b"4")
    assert store.list("") == ["a/b", "x/y/z"]


def test_disk_puts_survive_concurrent_directory_pruning(tmp_path: Path) -> None:
    store = DiskObjectStore(tmp_path)
    rounds = 100

    def work(index: int) -> None:
        for i in range(rounds):
            if index == 0:
                store.put("p/q/r/churn.json", b"1")
            elif index == 1:
                store.delete("p/q/r/churn.json")  # prunes p/q/r when it empties
            else:
                store.put(f"p/q/r/keep{i}.json", b"1")
                store.delete(f"p/q/r/keep{i}.json")

    assert _run_together(3, work) == []
    store.put("p/q/r/final.json", b"ok")
    assert store.get("p/q/r/final.json") == b"ok"


def test_disk_ping_fails_when_the_folder_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = DiskObjectStore(root)
    store.ping()
    root.rmdir()
    with pytest.raises(StorageUnavailableError):
        store.ping()
    with pytest.raises(StorageUnavailableError):
        store.put("a/b.json", b"1")  # must not silently recreate the folder
    assert not root.exists()
    root.write_bytes(b"not a folder")
    with pytest.raises(StorageUnavailableError):
        store.ping()
    with pytest.raises(StorageUnavailableError):
        store.put("a.json", b"1")


# --- S3 backend -------------------------------------------------------------------------------


def _s3_store(server: S3ServerInfo, bucket: str, **options: object) -> S3ObjectStore:
    kwargs: dict[str, object] = {
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
    }
    kwargs.update(options)
    return S3ObjectStore(bucket, **kwargs)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the socket is closed


def test_s3_layout_is_the_key(
    s3_store_factory: Callable[..., S3ObjectStore], s3_admin_client: S3Client
) -> None:
    store = s3_store_factory()
    store.put("a/b/c.json", b"{}", content_type="application/json")
    stored = s3_admin_client.get_object(Bucket=store.bucket, Key="a/b/c.json")
    assert stored["Body"].read() == b"{}"
    assert stored["ContentType"] == "application/json"
    assert store.description.startswith(f"s3://{store.bucket} (http://127.0.0.1:")


def test_s3_list_skips_foreign_keys_but_delete_prefix_removes_them(
    s3_store_factory: Callable[..., S3ObjectStore], s3_admin_client: S3Client
) -> None:
    store = s3_store_factory()
    store.put("a/ours.json", b"1")
    s3_admin_client.put_object(Bucket=store.bucket, Key="a/Theirs.TXT", Body=b"2")
    assert store.list("a") == ["a/ours.json"]
    assert store.delete_prefix("a") == 2
    assert s3_admin_client.list_objects_v2(Bucket=store.bucket).get("KeyCount") == 0


def test_s3_missing_bucket_is_unavailable(s3_server: S3ServerInfo) -> None:
    store = _s3_store(s3_server, f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises(StorageUnavailableError, match="bucket does not exist"):
        store.ping()
    with pytest.raises(StorageUnavailableError):
        store.get("a.json")  # not ObjectNotFoundError: the data is not known to be absent
    with pytest.raises(StorageUnavailableError):
        store.list("")
    with pytest.raises(StorageUnavailableError):
        store.put("a.json", b"1")


def test_s3_wrong_credentials_are_unavailable(
    s3_server: S3ServerInfo, new_s3_bucket: Callable[[], str]
) -> None:
    bucket = new_s3_bucket()
    for key_id, secret in [
        (s3_server.access_key_id, "wrong-secret"),
        ("unknown-key", s3_server.secret_access_key),
    ]:
        store = _s3_store(s3_server, bucket, access_key_id=key_id, secret_access_key=secret)
        with pytest.raises(StorageUnavailableError, match="access denied"):
            store.ping()
        with pytest.raises(StorageUnavailableError):
            store.get("a.json")
        with pytest.raises(StorageUnavailableError):
            store.put("a.json", b"1", if_absent=True)


def test_s3_closed_port_is_unavailable_quickly() -> None:
    store = S3ObjectStore(
        "any-bucket",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        region=None,
        access_key_id="key",
        secret_access_key="secret",
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="unreachable"):
        store.ping()
    # A readiness probe must answer, not sit in connection retries: a loose bound, not a benchmark.
    assert time.monotonic() - started < 10


def test_s3_create_bucket_option(s3_server: S3ServerInfo, s3_admin_client: S3Client) -> None:
    bucket = f"created-{uuid.uuid4().hex[:12]}"
    try:
        store = _s3_store(s3_server, bucket, create_bucket=True)
        store.ping()
        store.put("a.json", b"1")
        again = _s3_store(s3_server, bucket, create_bucket=True)  # already there: fine
        assert again.get("a.json") == b"1"

        s3_admin_client.delete_bucket(Bucket=bucket)  # gone after start-up: ping recreates it
        store.ping()
        assert store.list("") == []
    finally:
        s3_admin_client.delete_bucket(Bucket=bucket)


def test_s3_create_bucket_waits_for_an_unreachable_server() -> None:
    store = S3ObjectStore(
        "later-bucket",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        access_key_id="key",
        secret_access_key="secret",
        create_bucket=True,
        max_attempts=1,
    )  # constructing must not raise: the service starts before its S3 server
    with pytest.raises(StorageUnavailableError):
        store.ping()


def test_s3_rejects_bad_page_size() -> None:
    for page_size in (0, 1001):
        with pytest.raises(ValueError):
            S3ObjectStore("bucket", endpoint_url="http://127.0.0.1:9", page_size=page_size)


def test_s3_server_failure_reports_the_weed_log(tmp_path: Path) -> None:
    fake_weed = tmp_path / "weed"
    fake_weed.write_text("#!/bin/sh\necho 'cannot open volume: disk on fire' >&2\nexit 3\n")
    fake_weed.chmod(0o755)
    server = SeaweedS3Server(weed_binary=fake_weed, startup_timeout_s=10)
    with pytest.raises(S3ServerError, match=r"(?s)exit code 3.*disk on fire"):
        server.start()


# --- factory ----------------------------------------------------------------------------------


def test_create_object_store_chooses_the_backend(tmp_path: Path) -> None:
    def create(bucket: str | None, data_dir: Path | None) -> ObjectStore:
        return create_object_store(
            bucket=bucket,
            endpoint_url="http://127.0.0.1:9",
            region=None,
            access_key_id="key",
            secret_access_key="secret",
            data_dir=data_dir,
        )

    s3 = create("photos", tmp_path)
    assert isinstance(s3, S3ObjectStore)
    assert s3.description == "s3://photos (http://127.0.0.1:9)"

    for bucket in (None, ""):
        disk = create(bucket, tmp_path / "data")
        assert isinstance(disk, DiskObjectStore)
        assert disk.description == f"disk:{tmp_path / 'data'}"
        assert (tmp_path / "data").is_dir()

    with pytest.raises(ValueError):
        create(None, None)


def test_disk_store_writes_nothing_outside_its_root(tmp_path: Path) -> None:
    store = DiskObjectStore(tmp_path / "root")
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            store.put(key, b"x")
    assert sorted(os.listdir(tmp_path)) == ["root"]
    assert _files_under(tmp_path) == []
