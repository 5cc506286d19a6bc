"""Key templates: keys, folders and parsing from one pattern."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.records import keys
from app.records.templates import KeyTemplate


@dataclass(frozen=True)
class Ref:
    group: str
    number: int
    item: str


TEMPLATE = KeyTemplate(Ref, "things/{group}/v{number:03d}/{item}.json")


def test_a_key_is_built_and_parsed_back() -> None:
    key = TEMPLATE.key(group="a", number=7, item="x")
    assert key == "things/a/v007/x.json"
    assert TEMPLATE.parse(key) == Ref("a", 7, "x")


@pytest.mark.parametrize(
    "key",
    [
        "things/a/v007/x.jpg",  # another suffix
        "things/a/v007/x/y.json",  # a field never spans a folder
        "things/a/vxyz/x.json",  # not a number
        "other/a/v007/x.json",
        "things/a/v007/x.json.tmp",
    ],
)
def test_other_keys_are_not_parsed(key: str) -> None:
    assert TEMPLATE.parse(key) is None


def test_a_prefix_is_the_folder_of_the_first_fields() -> None:
    assert TEMPLATE.prefix() == "things/"
    assert TEMPLATE.prefix(group="a") == "things/a/"
    assert TEMPLATE.prefix(group="a", number=7) == "things/a/v007/"
    with pytest.raises(TypeError):
        TEMPLATE.prefix(number=7)  # not the first field
    with pytest.raises(TypeError):
        TEMPLATE.key(group="a", number=7)  # a field missing


def test_every_stored_thing_parses_its_own_keys_only() -> None:
    built = {
        keys.CLASS: keys.CLASS.key(class_id="c"),
        keys.STUDENT: keys.STUDENT.key(class_id="c", student_id="s"),
        keys.STUDENT_PHOTO: keys.STUDENT_PHOTO.key(class_id="c", student_id="s", photo_id="p"),
        keys.SAMPLE: keys.SAMPLE.key(class_id="c", student_id="s", sample_id="x"),
        keys.KNOWN_STRANGER: keys.KNOWN_STRANGER.key(class_id="c", stranger_id="x"),
        keys.HEAD: keys.HEAD.key(class_id="c", version=3),
        keys.SESSION: keys.SESSION.key(class_id="c", session_id="m"),
        keys.RECORD: keys.RECORD.key(class_id="c", session_id="m", student_id="s"),
        keys.CORRECTION: keys.CORRECTION.key(
            class_id="c", session_id="m", student_id="s", correction_id="k"
        ),
        keys.ASSIGNMENT: keys.ASSIGNMENT.key(
            class_id="c", session_id="m", photo_id="p", face_index=2, assignment_id="k"
        ),
    }
    for template, key in built.items():
        assert template.parse(key) is not None, key
        others = [t for t in built if t is not template and t.parse(key) is not None]
        assert others == [], (key, [t.pattern for t in others])
