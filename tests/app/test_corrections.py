"""A teacher correcting sessions, and the class learning from it: the API end to end with the
real models on real photos, on disk and on S3.

Four of the face-api.js cast are enrolled (Raj is not, so his face in ``bbt3`` is unknown); the
tests run in file order on one class per backend, and the destructive ones come last.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.records import keys
from app.storage import ObjectStore
from ml.pipeline import FacePipeline
from tests.app.conftest import CAST, context_of, running_app, trainer_of

CLASS_ID = "bbt"
ENROLLED = ("sheldon", "leonard", "penny", "howard")
PAST = "2026-01-05"
"""The date of a session held before anyone was enrolled (enrolment happens today)."""


@dataclass
class Term:
    client: TestClient
    store: ObjectStore
    photos: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Upload replies by session id."""

    def url(self, path: str = "") -> str:
        return f"/v1/classes/{CLASS_ID}{path}"

    def roster(self, session_id: str) -> dict[str, dict[str, Any]]:
        response = self.client.get(self.url(f"/sessions/{session_id}"))
        assert response.status_code == 200, response.text
        return {entry["student_id"]: entry for entry in response.json()["roster"]}

    def upload(self, session_id: str, photo: bytes) -> dict[str, Any]:
        response = self.client.post(
            self.url(f"/sessions/{session_id}/photos"),
            files={"photo": ("class.jpg", photo, "image/jpeg")},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def face_of(self, upload: dict[str, Any], student_id: str | None) -> int:
        """The index of the face recognition named ``student_id`` (``None``: the unknown face)."""
        found = [
            i
            for i, face in enumerate(upload["faces"])
            if face["student_id"] == student_id and not face["too_small"]
        ]
        assert len(found) == 1, upload["faces"]
        return found[0]

    def assign(
        self, session_id: str, upload: dict[str, Any], face: int, student: str | None
    ) -> Any:
        return self.client.post(
            self.url(f"/sessions/{session_id}/photos/{upload['photo_id']}/faces/{face}/assign"),
            json={"student_id": student},
        )


@pytest.fixture(scope="module")
def bbt3(groups_dir: Path) -> bytes:
    return (groups_dir / "face_api_js__bbt3.jpg").read_bytes()


@pytest.fixture(scope="module", params=["disk", "s3"])
def term(
    request: pytest.FixtureRequest,
    module_store: Callable[[str], ObjectStore],
    fast_cast_pipeline: FacePipeline,
    cast_photos: dict[str, bytes],
    bbt3: bytes,
) -> Iterator[Term]:
    store = module_store(request.param)
    with running_app(fast_cast_pipeline, store) as client:
        term = Term(client, store)
        assert (
            client.post("/v1/classes", json={"id": CLASS_ID, "name": "Physics 7b"}).status_code
            == 201
        )
        for name in ENROLLED:
            response = client.post(
                term.url("/students"),
                data={"student_id": name, "name": name.title()},
                files={"photos": (f"{name}1.png", cast_photos[name], "image/png")},
            )
            assert response.status_code == 201, response.text
        for session_id, day in (("wk1", PAST), ("wk2", None)):
            body = {"id": session_id, "label": f"Week {session_id[-1]}", "date": day}
            assert client.post(term.url("/sessions"), json=body).status_code == 201
            term.photos[session_id] = term.upload(session_id, bbt3)
        yield term


def test_recognition_names_the_enrolled_and_leaves_raj_unknown(term: Term) -> None:
    upload = term.photos["wk1"]
    assert sorted(upload["recorded"]) == sorted(ENROLLED)
    term.face_of(upload, None)  # exactly one unknown face: Raj's
    roster = term.roster("wk1")
    for student_id in ENROLLED:
        entry = roster[student_id]
        assert (entry["status"], entry["source"], entry["present"]) == (
            "present",
            "recognised",
            True,
        )
        assert entry["photo_id"] == upload["photo_id"] and entry["score"] is not None


def test_manual_absent_wins_over_later_photos(term: Term, bbt3: bytes) -> None:
    path = term.url("/sessions/wk1/records/penny")
    response = term.client.put(path, json={"status": "absent", "note": "left after ten minutes"})
    assert response.status_code == 200, response.text
    entry = response.json()
    assert (entry["status"], entry["source"], entry["present"]) == ("absent", "teacher", False)
    assert entry["note"] == "left after ten minutes" and entry["corrected_by"] == "console"

    later = term.upload("wk1", bbt3)  # recognises Penny again
    assert "penny" in {face["student_id"] for face in later["faces"]}
    roster = term.roster("wk1")
    assert roster["penny"]["status"] == "absent" and roster["penny"]["source"] == "teacher"
    assert roster["leonard"]["status"] == "present"
    session = term.client.get(term.url("/sessions/wk1")).json()
    assert (session["present_count"], session["absent_count"]) == (3, 1)

    # Removing the manual entry lets recognition apply again; there is nothing left to remove.
    cleared = term.client.delete(path)
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["status"], cleared.json()["source"]) == ("present", "recognised")
    again = term.client.delete(path)
    assert again.status_code == 404 and "no status set by hand" in again.json()["detail"]

    # Late counts as attending; the reply and the roster agree.
    late = term.client.put(term.url("/sessions/wk1/records/howard"), json={"status": "late"})
    assert late.json()["present"] is True and late.json()["status"] == "late"
    assert term.roster("wk1")["howard"]["status"] == "late"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/sessions/wk1/records/penny", {"status": "gone"}, 422),
        ("/sessions/wk1/records/penny", {"status": "absent", "note": "x" * 501}, 422),
        ("/sessions/wk1/records/penny", {"status": "absent", "extra": 1}, 422),
        ("/sessions/wk1/records/nobody", {"status": "absent"}, 404),
        ("/sessions/nosuch/records/penny", {"status": "absent"}, 404),
    ],
)
def test_bad_status_corrections_are_refused(
    term: Term, path: str, body: dict[str, Any], status: int
) -> None:
    response = term.client.put(term.url(path), json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_assignment_moves_a_wrong_name(term: Term) -> None:
    upload = term.photos["wk2"]
    leonard_face = term.face_of(upload, "leonard")
    howard_face = term.face_of(upload, "howard")
    stored_annotated = term.client.get(upload["annotated_url"]).content

    # Say the face recognition took for Leonard is Howard.
    response = term.assign("wk2", upload, leonard_face, "howard")
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert (faces[leonard_face]["student_id"], faces[leonard_face]["source"]) == (
        "howard",
        "teacher",
    )
    assert faces[howard_face]["student_id"] is None  # the name moved
    roster = term.roster("wk2")
    assert (roster["howard"]["source"], roster["howard"]["face_index"]) == (
        "teacher",
        leonard_face,
    )
    assert roster["howard"]["corrected_by"] == "console"
    assert roster["leonard"]["status"] == "absent"  # lost what that face gave him

    # The annotated copy shows the corrected names: drawn again, same size.
    redrawn = term.client.get(upload["annotated_url"])
    assert redrawn.status_code == 200 and redrawn.content != stored_annotated
    assert (
        Image.open(io.BytesIO(redrawn.content)).size
        == Image.open(io.BytesIO(stored_annotated)).size
    )

    # Howard is on one face of the photo at most.
    conflict = term.assign("wk2", upload, howard_face, "howard")
    assert conflict.status_code == 409 and "already assigned to face" in conflict.json()["detail"]

    # Undo: the face is Leonard after all; Howard's own face is his again by recognition.
    back = term.assign("wk2", upload, leonard_face, "leonard").json()["faces"]
    assert back[leonard_face]["student_id"] == "leonard"
    assert back[howard_face]["student_id"] == "howard"
    roster = term.roster("wk2")
    assert roster["leonard"]["source"] == "teacher" and roster["howard"]["source"] == "recognised"
    assert term.client.get(upload["annotated_url"]).content == stored_annotated


def test_bad_assignments_are_refused(term: Term) -> None:
    upload = term.photos["wk2"]
    for face, body, status in (
        (99, {"student_id": "penny"}, 404),
        (0, {"student_id": "nobody"}, 404),
        (0, {"student_id": "Not A Slug"}, 422),
        (0, {}, 422),
    ):
        response = term.client.post(
            term.url(f"/sessions/wk2/photos/{upload['photo_id']}/faces/{face}/assign"), json=body
        )
        assert response.status_code == status, (face, body, response.text)


def test_a_face_can_be_nobody_of_the_class(term: Term) -> None:
    upload = term.photos["wk1"]
    raj_face = term.face_of(upload, None)
    response = term.assign("wk1", upload, raj_face, None)
    assert response.status_code == 200, response.text
    face = response.json()["faces"][raj_face]
    assert face["not_in_class"] is True and face["student_id"] is None
    assert face["source"] == "teacher"
    (stranger,) = term.client.get(term.url("/strangers")).json()
    assert (stranger["photo_id"], stranger["face_index"]) == (upload["photo_id"], raj_face)


def test_past_roster_unchanged_by_a_later_enrolment(
    term: Term, cast_photos: dict[str, bytes]
) -> None:
    before = term.roster("wk1")
    response = term.client.post(
        term.url("/students"),
        data={"student_id": "raj", "name": "Raj"},
        files={"photos": ("raj1.png", cast_photos["raj"], "image/png")},
    )
    assert response.status_code == 201, response.text
    # Raj's face was marked "not in this class" in wk1, before he joined it: that mark no longer
    # keeps him from being named, and the teacher is told.
    assert term.client.get(term.url("/strangers")).json() == []
    assert any("not in this class" in w for w in response.json()["warnings"])
    after = term.roster("wk1")
    assert "raj" not in after and after.keys() == before.keys()
    assert "raj" in term.roster("wk2")  # today's session: enrolled on its day
    history = term.client.get(term.url("/students/raj/attendance")).json()
    assert [s["session_id"] for s in history["sessions"]] == ["wk2"]
    # A status given by hand puts them on the past roster after all.
    put = term.client.put(term.url("/sessions/wk1/records/raj"), json={"status": "excused"})
    assert put.status_code == 200
    assert term.roster("wk1")["raj"]["status"] == "excused"


def _raj_similarity(term: Term, bbt3: bytes, raj_face_box: list[float]) -> float:
    response = term.client.post(
        term.url("/recognise"), files={"photo": ("class.jpg", bbt3, "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    for face in response.json()["faces"]:
        if face["box"] == raj_face_box:
            similarity: float = (
                face["similarities"]["facenet"] if face["candidate_id"] == "raj" else -1
            )
            return similarity
    raise AssertionError("Raj's face not found")


def test_a_named_face_becomes_a_sample_the_matcher_uses(term: Term, bbt3: bytes) -> None:
    upload = term.photos["wk2"]
    raj_face = term.face_of(upload, None)
    box = upload["faces"][raj_face]["box"]
    before = _raj_similarity(term, bbt3, box)

    assert term.assign("wk2", upload, raj_face, "raj").status_code == 200
    detail = term.client.get(term.url("/students/raj")).json()
    (sample,) = detail["samples"]
    assert (sample["session_id"], sample["photo_id"], sample["face_index"]) == (
        "wk2",
        upload["photo_id"],
        raj_face,
    )
    assert (sample["confirmed_by"], sample["confirmed_label"]) == ("teacher", "console")
    crop = term.client.get(sample["crop_url"])
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(crop.content)).size[0] > 20

    # Raj's own face from this photo is now one of his photos: the same face matches him better.
    after = _raj_similarity(term, bbt3, box)
    assert after > before + 0.05, (before, after)
    assert term.roster("wk2")["raj"]["source"] == "teacher"

    # A wrong sample is removed by hand; the matcher forgets it.
    url = term.url(f"/students/raj/samples/{sample['sample_id']}")
    assert term.client.delete(url).status_code == 204
    assert term.client.get(term.url("/students/raj")).json()["samples"] == []
    assert term.client.delete(url).status_code == 404
    assert abs(_raj_similarity(term, bbt3, box) - before) < 1e-3
    # Name the face again for the tests below (a sample is written again).
    assert term.assign("wk2", upload, raj_face, None).status_code == 200
    assert term.assign("wk2", upload, raj_face, "raj").status_code == 200
    assert len(term.client.get(term.url("/students/raj")).json()["samples"]) == 1


def test_reassigning_a_face_moves_its_sample(term: Term) -> None:
    upload = term.photos["wk2"]
    raj_face = next(
        s["face_index"] for s in term.client.get(term.url("/students/raj")).json()["samples"]
    )
    # Penny is recognised on her own face in this photo: naming Raj's face Penny moves her.
    response = term.assign("wk2", upload, raj_face, "penny")
    assert response.status_code == 200, response.text
    assert term.client.get(term.url("/students/raj")).json()["samples"] == []
    penny = [
        (s["face_index"], s["confirmed_by"])
        for s in term.client.get(term.url("/students/penny")).json()["samples"]
        if s["photo_id"] == upload["photo_id"]
    ]
    # Her own face's sample (recognised surely at upload) went with her name.
    assert penny == [(raj_face, "teacher")]
    # Back to Raj: Penny keeps no sample of this photo (her own face is hers by recognition
    # again, but a sample is only taken when a photo is uploaded or a face named).
    assert term.assign("wk2", upload, raj_face, "raj").status_code == 200
    assert not [
        s
        for s in term.client.get(term.url("/students/penny")).json()["samples"]
        if s["photo_id"] == upload["photo_id"]
    ]


def _race(term: Term, session_id: str, student: str, photo: bytes) -> dict[str, int]:
    """Correct ``student`` and upload ``photo`` to the session at the same time."""
    results: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def correct() -> None:
        barrier.wait()
        response = term.client.put(
            term.url(f"/sessions/{session_id}/records/{student}"), json={"status": "absent"}
        )
        results["correction"] = response.status_code

    def upload() -> None:
        barrier.wait()
        response = term.client.post(
            term.url(f"/sessions/{session_id}/photos"),
            files={"photo": ("class.jpg", photo, "image/jpeg")},
        )
        results["upload"] = response.status_code

    threads = [threading.Thread(target=correct), threading.Thread(target=upload)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_correction_racing_an_upload_keeps_both(term: Term, bbt3: bytes) -> None:
    for round_, student in enumerate(ENROLLED[:3]):
        session_id = f"race{round_}"
        created = term.client.post(term.url("/sessions"), json={"id": session_id, "label": "Race"})
        assert created.status_code == 201
        assert _race(term, session_id, student, bbt3) == {"correction": 200, "upload": 201}
        session = term.client.get(term.url(f"/sessions/{session_id}")).json()
        roster = {e["student_id"]: e for e in session["roster"]}
        assert len(session["photo_ids"]) == 1
        assert roster[student]["status"] == "absent" and roster[student]["source"] == "teacher"
        others = [s for s in ENROLLED if s != student]
        assert all(roster[s]["status"] == "present" for s in others)


def test_session_csv_has_the_corrections_and_a_readable_name(term: Term) -> None:
    response = term.client.get(term.url("/sessions/wk1/attendance.csv"))
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert f'filename="Physics 7b {PAST} Week 1.csv"' in disposition
    assert "filename*=UTF-8''Physics%207b%20" in disposition
    rows = {row["student_id"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert list(next(iter(rows.values())))[:6] == [
        "student_id",
        "name",
        "status",
        "recorded_at",
        "similarity",
        "photo_id",
    ]
    assert rows["howard"]["status"] == "late" and rows["howard"]["source"] == "teacher"
    assert rows["penny"]["status"] == "present" and rows["penny"]["source"] == "recognised"
    assert rows["raj"]["status"] == "excused"
    assert {row["session"] for row in rows.values()} == {"Week 1"}
    assert {row["date"] for row in rows.values()} == {PAST}


def test_term_report(term: Term) -> None:
    report = term.client.get(term.url("/attendance")).json()
    sessions = [s["id"] for s in report["sessions"]]
    assert sessions[0] == "wk1" and set(sessions) == {"wk1", "wk2", "race0", "race1", "race2"}
    rows = {row["student_id"]: row for row in report["students"]}
    raj = rows["raj"]
    assert raj["statuses"][0] == "excused"  # wk1, by hand
    assert raj["statuses"][sessions.index("wk2")] == "present"
    for row in rows.values():  # excused does not count; present and late attend
        statuses = row["statuses"]
        assert row["attended"] == sum(1 for s in statuses if s in ("present", "late"))
        assert row["counted"] == sum(1 for s in statuses if s not in (None, "excused"))
    assert raj["counted"] == len(sessions) - 1
    sheldon = rows["sheldon"]
    assert sheldon["statuses"][sessions.index("race0")] == "absent"  # set by hand in the race
    assert (sheldon["attended"], sheldon["counted"]) == (4, 5)

    today = dt.date.today().isoformat()
    only_past = term.client.get(term.url("/attendance"), params={"to": PAST}).json()
    assert [s["id"] for s in only_past["sessions"]] == ["wk1"]
    assert [
        s["id"]
        for s in term.client.get(term.url("/attendance"), params={"from": today}).json()["sessions"]
    ] == sessions[1:]
    bad = term.client.get(term.url("/attendance"), params={"from": today, "to": PAST})
    assert bad.status_code == 422 and "after" in bad.json()["detail"]
    assert term.client.get(term.url("/attendance"), params={"from": "soon"}).status_code == 422

    download = term.client.get(term.url("/attendance.csv"), params={"to": PAST})
    assert download.status_code == 200
    assert (
        f'filename="Physics 7b attendance start to {PAST}.csv"'
        in download.headers["content-disposition"]
    )
    table = list(csv.reader(io.StringIO(download.text)))
    assert table[0] == [
        "student_id",
        "name",
        f"{PAST} Week 1",
        "attended",
        "sessions",
        "rate_percent",
    ]
    by_id = {row[0]: row for row in table[1:]}
    assert by_id["raj"][2:] == ["excused", "0", "0", ""]
    assert by_id["howard"][2:] == ["late", "1", "1", "100.0"]


def test_corrections_survive_a_restart(term: Term, fast_cast_pipeline: FacePipeline) -> None:
    """A new service on the same store (a restart, or a second replica) sees every correction."""
    rosters = {sid: term.roster(sid) for sid in ("wk1", "wk2", "race0")}
    photo = term.client.get(term.url(f"/sessions/wk2/photos/{term.photos['wk2']['photo_id']}"))
    with running_app(fast_cast_pipeline, term.store) as other:
        again = Term(other, term.store)
        assert {sid: again.roster(sid) for sid in rosters} == rosters
        assert (
            other.get(term.url(f"/sessions/wk2/photos/{term.photos['wk2']['photo_id']}")).json()
            == photo.json()
        )
        assert (
            other.get(term.url("/students/raj")).json()["samples"]
            == term.client.get(term.url("/students/raj")).json()["samples"]
        )


def test_rename_changes_the_annotated_photo(term: Term) -> None:
    upload = term.photos["wk1"]
    before = term.client.get(upload["annotated_url"]).content
    response = term.client.patch(term.url("/students/leonard"), json={"name": "Leonard Hofstadter"})
    assert response.status_code == 200
    detail = term.client.get(term.url(f"/sessions/wk1/photos/{upload['photo_id']}")).json()
    assert "Leonard Hofstadter" in {face["name"] for face in detail["faces"]}
    after = term.client.get(upload["annotated_url"]).content
    assert after != before


def test_export_holds_everything_about_a_student(term: Term) -> None:
    response = term.client.get(term.url("/students/raj/export"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="Raj (bbt) data export.zip"' in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = archive.namelist()
    manifest = json.loads(archive.read("manifest.json"))["counts"]
    history = term.client.get(term.url("/students/raj/attendance")).json()["sessions"]
    samples = term.client.get(term.url("/students/raj")).json()["samples"]
    faces = [n for n in names if n.startswith("class-photo-faces/")]
    assert manifest == {
        "record": 1,
        "registration_photo": 1,
        "face_template": 2,  # FaceNet's and dlib's of the one photo
        "sample": 2 * len(samples),
        "class_photo_face": len(faces),
        "attendance": 1,
    }
    # Raj's face in wk2 (named by the teacher) and in every race session (recognised).
    assert f"class-photo-faces/wk2_{term.photos['wk2']['photo_id']}_" in "".join(faces)
    assert len(faces) >= 1 + sum(1 for s in history if s["session_id"].startswith("race"))
    for name in faces + [n for n in names if n.endswith(".jpg")]:
        assert Image.open(io.BytesIO(archive.read(name))).format == "JPEG"
    record = json.loads(archive.read("student.json"))
    assert record["student"]["id"] == "raj" and len(record["registration_photos"]) == 1
    rows = list(csv.DictReader(io.StringIO(archive.read("attendance.csv").decode())))
    assert [(r["session_id"], r["status"]) for r in rows] == [
        (s["session_id"], s["status"]) for s in history
    ]
    readme = archive.read("README.txt").decode()
    assert "Raj (id raj)" in readme and f"- {len(faces)} x class-photo-faces/" in readme
    assert term.client.get(term.url("/students/nobody/export")).status_code == 404


def test_erasure_removes_samples_and_corrections(term: Term) -> None:
    client, store = term.client, term.store
    raj_samples = client.get(term.url("/students/raj")).json()["samples"]
    assert raj_samples  # from the tests above
    upload = term.photos["wk2"]
    raj_face = term.face_of(upload, None)
    # What must be gone from every object afterwards: the photos and embeddings, as bytes.
    held = [
        store.get(key)
        for key in store.list(keys.STUDENT.prefix(class_id=CLASS_ID, student_id="raj"))
        if key.endswith((".jpg", ".npy"))
    ]
    assert len(held) == 3  # the registration photo, FaceNet's and dlib's embeddings

    response = client.delete(term.url("/students/raj"), params={"report": "true"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["student_id"] == "raj"
    assert report["removed"] == {
        "record": 1,
        "registration_photo": 1,
        "photo_report": 1,
        "face_template": 2,
        "sample": len(raj_samples),
        "attendance_record": report["removed"]["attendance_record"],
        "status_correction": 1,  # excused in wk1
        "face_assignment": report["removed"]["face_assignment"],
        "class_photo_relabelled": report["removed"]["class_photo_relabelled"],
    }
    assert report["removed"]["face_assignment"] >= 1  # wk2's face, named Raj by the teacher
    assert report["removed"]["attendance_record"] >= 3  # the race sessions recognised him
    assert client.delete(term.url("/students/penny")).status_code == 204
    assert client.delete(term.url("/students/raj")).status_code == 404
    assert trainer_of(client).wait_idle(timeout=300)  # the head is trained again without them
    for key in store.list(""):
        body = store.get(key)
        assert not any(photo_or_embedding in body for photo_or_embedding in held), key
        if key.startswith(keys.AUDIT_PREFIX):
            # The audit log alone keeps the erased students' ids, never their names.
            assert '"Raj"' not in body.decode() and '"Penny"' not in body.decode(), key
            continue
        assert not {"raj", "penny"} & set(key.replace(".", "/").split("/")), key
        if key.endswith(".json"):
            text = body.decode()
            for word in ('"raj"', '"penny"', '"Raj"', '"Penny"'):
                assert word not in text, (key, word)
    # The face the teacher had named Raj is nobody now: it does not fall back to recognition.
    face = client.get(term.url(f"/sessions/wk2/photos/{upload['photo_id']}")).json()["faces"][
        raj_face
    ]
    assert face["student_id"] is None and face["not_in_class"] is True
    assert "raj" not in term.roster("wk1") and "penny" not in term.roster("wk2")
    assert client.get(term.url("/students/raj/export")).status_code == 404
    gallery = context_of(client).galleries.get(CLASS_ID)
    assert set(gallery.student_ids) == {"sheldon", "leonard", "howard"}
    owners = {keys.SAMPLE.parse(key) for key in gallery.sample_keys}
    assert {ref.student_id for ref in owners if ref is not None} <= set(gallery.student_ids)


def test_cast_is_what_the_module_assumes() -> None:
    assert set(ENROLLED) | {"raj"} == set(CAST)
