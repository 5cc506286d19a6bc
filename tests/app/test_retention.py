"""Retention through the API, the cron command and the service's background purge, with the real
models on a real class photo, on disk and on S3. The purge's clock is set by the test (no
sleeping); the rules in detail are tested in ``tests/app/services/test_retention.py``."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest

from app import purge
from app.records import keys
from app.services.privacy import RetentionPurger
from ml.pipeline import FacePipeline
from tests.app.conftest import MakeObjectStore, api_settings, context_of, running_app

CLASS_ID = "retained"
ENROLLED = ("sheldon", "leonard", "penny")
DAY = dt.timedelta(days=1)


def test_retention_on_the_api_the_cron_command_and_the_background_purge(
    fast_cast_pipeline: FacePipeline,
    make_object_store: MakeObjectStore,
    cast_photos: dict[str, bytes],
    groups_dir: Path,
) -> None:
    store = make_object_store()
    url = f"/v1/classes/{CLASS_ID}"
    with running_app(fast_cast_pipeline, store) as client:
        assert client.post("/v1/classes", json={"id": CLASS_ID, "name": "7B"}).status_code == 201
        for name in ENROLLED:
            response = client.post(
                f"{url}/students",
                data={"student_id": name, "name": name.title()},
                files={"photos": (f"{name}1.png", cast_photos[name], "image/png")},
            )
            assert response.status_code == 201, response.text
        body = {"id": "wk1", "label": "Week 1", "date": dt.date.today().isoformat()}
        assert client.post(f"{url}/sessions", json=body).status_code == 201
        photo = (groups_dir / "face_api_js__bbt3.jpg").read_bytes()
        response = client.post(
            f"{url}/sessions/wk1/photos", files={"photo": ("bbt3.jpg", photo, "image/jpeg")}
        )
        assert response.status_code == 201, response.text
        upload: dict[str, Any] = response.json()
        assert sorted(upload["recorded"]) == sorted(ENROLLED)
        assert client.get(upload["face_urls"][0]).status_code == 200
        roster_before = client.get(f"{url}/sessions/wk1").json()["roster"]

        # Per-class overrides: absent fields unchanged, null = the default, 0 = forever/never.
        shown = client.get(url).json()["retention"]
        assert shown == {
            "session_photo_retention_days": None,
            "student_inactive_retention_days": None,
            "effective_session_photo_retention_days": 30,
            "effective_student_inactive_retention_days": 0,
        }
        response = client.patch(url, json={"session_photo_retention_days": 14})
        assert response.status_code == 200, response.text
        response = client.patch(url, json={"student_inactive_retention_days": 60, "name": "7 B"})
        assert response.status_code == 200, response.text
        changed = response.json()
        assert changed["name"] == "7 B"
        assert changed["retention"]["effective_session_photo_retention_days"] == 14
        assert changed["retention"]["student_inactive_retention_days"] == 60
        for bad in ({"name": None}, {"session_photo_retention_days": -1}, {"colour": "red"}):
            response = client.patch(url, json=bad)
            assert response.status_code == 422, response.text
            assert response.json()["detail"]
        assert client.patch("/v1/classes/nope", json={"name": "x"}).status_code == 404

        # The cron command, 15 days later: the photo loses its images, the roster stays.
        detail = client.get(f"{url}/sessions/wk1/photos/{upload['photo_id']}").json()
        created = dt.datetime.fromisoformat(detail["created_at"])
        out = io.StringIO()
        report = purge.run(api_settings(), store, class_id=None, out=out, now=created + 15 * DAY)
        assert [(c.class_id, c.photos_purged, c.students_erased) for c in report.classes] == [
            (CLASS_ID, 1, [])
        ]
        assert f"{CLASS_ID}: 1 photos purged (kept 14 days)" in out.getvalue()
        assert client.get(f"{url}/sessions/wk1").json()["roster"] == roster_before
        for image_url in (upload["annotated_url"], upload["face_urls"][0]):
            response = client.get(image_url)
            assert response.status_code == 410, response.text
            assert "retention policy" in response.json()["detail"]
        assert client.get(f"{url}/sessions/wk1/photos/{upload['photo_id']}").status_code == 200
        listed = store.list(keys.SESSION_PHOTO.prefix(class_id=CLASS_ID, session_id="wk1"))
        assert sorted(k.rsplit("/", 1)[-1] for k in listed) == [keys.PURGED, keys.RESULT]
        again = purge.run(
            api_settings(), store, class_id=CLASS_ID, out=io.StringIO(), now=created + 15 * DAY
        )
        assert again.photos_purged == 0

        # The service's background purge, 200 days later: Sheldon was marked present in a
        # session dated within the 60 days, the others attended nothing since: erased.
        future = (created + 190 * DAY).date().isoformat()
        body = {"id": "wk30", "label": "Week 30", "date": future}
        assert client.post(f"{url}/sessions", json=body).status_code == 201
        response = client.put(f"{url}/sessions/wk30/records/sheldon", json={"status": "present"})
        assert response.status_code == 200, response.text
        purger = RetentionPurger(context_of(client), 3600, clock=lambda: created + 200 * DAY)
        try:
            purger.request_all()
            assert purger.wait_idle(timeout=120)
        finally:
            purger.close()
        assert sorted(purger.last[CLASS_ID].students_erased) == ["leonard", "penny"]
        listed = client.get(f"{url}/students").json()
        assert [s["id"] for s in listed] == ["sheldon"]
        for gone in ("leonard", "penny"):
            assert not store.list(keys.STUDENT.prefix(class_id=CLASS_ID, student_id=gone))
            assert not [
                key for key in store.list(keys.CLASS.prefix(class_id=CLASS_ID)) if gone in key
            ]
        roster = {
            e["student_id"]: e["status"] for e in client.get(f"{url}/sessions/wk1").json()["roster"]
        }
        assert roster == {"sheldon": "present"}


@pytest.mark.parametrize("value", ["-1", "3651", "a month"])
def test_retention_settings_are_validated(value: str) -> None:
    with pytest.raises(ValueError, match="session_photo_retention_days"):
        api_settings(session_photo_retention_days=value)
