"""Embedding keys per model: built and parsed in one place; older readers' layout is unchanged."""

from __future__ import annotations

from app.services import layout
from app.services.records import parse_listing, parse_student_keys


def test_embedding_keys_round_trip() -> None:
    facenet = layout.embedding_key("c", "s", "p1")
    dlib = layout.embedding_key("c", "s", "p1", "dlib")
    assert facenet == "classes/c/students/s/embeddings/p1.npy"
    assert dlib == "classes/c/students/s/embeddings/dlib/p1.npy"
    assert layout.parse_embedding_key("c", facenet) == layout.EmbeddingRef("s", "p1", "facenet")
    assert layout.parse_embedding_key("c", dlib) == layout.EmbeddingRef("s", "p1", "dlib")
    assert layout.parse_embedding_key("c", "classes/c/students/s/photos/p1.jpg") is None
    assert layout.parse_embedding_key("other", facenet) is None


def test_listing_counts_a_secondary_embedding_only_beside_facenets() -> None:
    keys = [
        layout.student_key("c", "a"),
        layout.embedding_key("c", "a", "p1"),
        layout.embedding_key("c", "a", "p1", "dlib"),
        # Registration in flight: dlib's embedding is written before FaceNet's.
        layout.embedding_key("c", "a", "p2", "dlib"),
        # No student.json: being created or erased.
        layout.embedding_key("c", "b", "p3"),
        layout.embedding_key("c", "b", "p3", "dlib"),
    ]
    parsed = parse_listing("c", keys)
    assert parsed.documented == {"a"}
    assert parsed.embeddings == [layout.embedding_key("c", "a", "p1")]
    assert parsed.secondary == [layout.embedding_key("c", "a", "p1", "dlib")]
    # The FaceNet-only view that older code relied on is unchanged by the new model's folder.
    assert parse_student_keys("c", keys) == ({"a"}, [layout.embedding_key("c", "a", "p1")])
