"""Embedding keys per model: built and parsed in one place; older readers' layout is unchanged."""

from __future__ import annotations

from app.records import keys
from app.records.students import parse_listing, parse_student_keys


def test_embedding_keys_round_trip() -> None:
    facenet = keys.embedding_key("c", "s", "p1")
    dlib = keys.embedding_key("c", "s", "p1", "dlib")
    assert facenet == "classes/c/students/s/embeddings/p1.npy"
    assert dlib == "classes/c/students/s/embeddings/dlib/p1.npy"
    assert keys.parse_embedding_key("c", facenet) == keys.EmbeddingRef("s", "p1", "facenet")
    assert keys.parse_embedding_key("c", dlib) == keys.EmbeddingRef("s", "p1", "dlib")
    assert keys.parse_embedding_key("c", "classes/c/students/s/photos/p1.jpg") is None
    assert keys.parse_embedding_key("other", facenet) is None


def test_listing_counts_a_secondary_embedding_only_beside_facenets() -> None:
    listed = [
        keys.STUDENT.key(class_id="c", student_id="a"),
        keys.embedding_key("c", "a", "p1"),
        keys.embedding_key("c", "a", "p1", "dlib"),
        # Registration in flight: dlib's embedding is written before FaceNet's.
        keys.embedding_key("c", "a", "p2", "dlib"),
        # No student.json: being created or erased.
        keys.embedding_key("c", "b", "p3"),
        keys.embedding_key("c", "b", "p3", "dlib"),
    ]
    parsed = parse_listing("c", listed)
    assert parsed.documented == {"a"}
    assert parsed.embeddings == [keys.embedding_key("c", "a", "p1")]
    assert parsed.secondary == [keys.embedding_key("c", "a", "p1", "dlib")]
    # The FaceNet-only view that older code relied on is unchanged by the new model's folder.
    assert parse_student_keys("c", listed) == ({"a"}, [keys.embedding_key("c", "a", "p1")])
