"""Settings: the operator's env file, ROLLCALL_ variables, validation, the mapping onto PipelineConfig."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings
from ml.config import PipelineConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "S3_BUCKET_NAME",
    "S3_ENDPOINT_URL",
    "AWS_REGION",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting in the environment, and a working directory without a ``.env``."""
    for name in list(os.environ):
        if name.startswith("ROLLCALL_") or name in OPERATOR_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_keep_data_in_a_local_folder(clean_env: Path) -> None:
    settings = Settings()
    storage = settings.storage_kwargs()
    assert storage["bucket"] is None
    assert storage["data_dir"] == Path("data")
    assert settings.detector == "mtcnn"
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.max_image_pixels == 40_000_000


def test_operator_env_file_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\n"
        "AWS_SECRET_ACCESS_KEY=secret/with+chars\n"
        "S3_BUCKET_NAME=attendance\n"
        "S3_ENDPOINT_URL=http://seaweedfs:8333\n"
        "AWS_REGION=eu-west-1\n"
        "SOMETHING_ELSE=ignored\n"
        "ROLLCALL_N_VIEWS=4\n"
        "ROLLCALL_LOG_LEVEL=debug\n"
    )
    settings = Settings()
    assert settings.storage_kwargs() == {
        "bucket": "attendance",
        "endpoint_url": "http://seaweedfs:8333",
        "region": "eu-west-1",
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": "secret/with+chars",
        "data_dir": Path("data"),
        "data_keys": None,
        "server_side_encryption": None,
        "sse_kms_key_id": None,
    }
    assert settings.n_views == 4
    assert settings.log_level == "DEBUG"
    # Secrets never show up in a repr (logs, tracebacks).
    assert "secret/with+chars" not in repr(settings)


def test_environment_overrides_env_file_and_empty_means_unset(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text("S3_BUCKET_NAME=from-file\nROLLCALL_DETECTOR=mtcnn\n")
    monkeypatch.setenv("S3_BUCKET_NAME", "")
    monkeypatch.setenv("ROLLCALL_UNKNOWN_THRESHOLD", "0.42")
    settings = Settings()
    # An empty variable does not count as set, so the file's value stays.
    assert settings.s3_bucket_name == "from-file"
    assert settings.unknown_threshold == pytest.approx(0.42)
    monkeypatch.setenv("S3_BUCKET_NAME", "from-env")
    assert Settings().s3_bucket_name == "from-env"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ROLLCALL_DETECTOR": "haar"}, "detector"),
        ({"ROLLCALL_DETECTOR": "yolo"}, "ROLLCALL_YOLO_WEIGHTS"),
        ({"ROLLCALL_YOLO_WEIGHTS": "/nonexistent/face.onnx"}, "weights file not found"),
        ({"AWS_ACCESS_KEY_ID": "only-the-key"}, "AWS_SECRET_ACCESS_KEY"),
        ({"S3_ENDPOINT_URL": "seaweedfs:8333"}, "http://"),
        ({"ROLLCALL_MAX_UPLOAD_BYTES": "0"}, "max_upload_bytes"),
        ({"ROLLCALL_UNKNOWN_THRESHOLD": "1.5"}, "unknown_threshold"),
        ({"ROLLCALL_N_VIEWS": "0"}, "n_views"),
        ({"ROLLCALL_LOG_LEVEL": "chatty"}, "log_level"),
    ],
)
def test_invalid_settings_are_refused_with_a_reason(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_settings_map_onto_pipeline_config(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    weights = tmp_path / "face.onnx"
    weights.write_bytes(b"not really weights")
    monkeypatch.setenv("ROLLCALL_DETECTOR", "yolo")
    monkeypatch.setenv("ROLLCALL_YOLO_WEIGHTS", str(weights))
    monkeypatch.setenv("ROLLCALL_MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROLLCALL_N_VIEWS", "5")
    monkeypatch.setenv("ROLLCALL_SEGMENTATION", "true")
    monkeypatch.setenv("ROLLCALL_USE_HEAD", "false")
    monkeypatch.setenv("ROLLCALL_UNKNOWN_THRESHOLD", "0.5")
    config = Settings().pipeline_config()
    assert config.detector == "yolo"
    assert config.yolo_weights == weights
    assert config.model_cache_dir == tmp_path / "cache"
    assert config.n_views == 5
    assert config.segmentation is True
    assert config.use_head is False
    assert config.unknown_threshold == pytest.approx(0.5)


def test_unset_head_setting_keeps_the_pipeline_default(clean_env: Path) -> None:
    assert Settings().pipeline_config().use_head == PipelineConfig().use_head


def test_model_cache_accepts_the_ml_weights_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLCALL_MODEL_CACHE", "/opt/models")
    assert Settings().model_cache_dir == Path("/opt/models")


def _env_names(settings_cls: type[Settings]) -> set[str]:
    names = set()
    for field_name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.add(str(choices[0]))
        else:
            names.add(f"ROLLCALL_{field_name.upper()}")
    return names


def test_env_example_documents_every_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    missing = _env_names(Settings) - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
    unknown = {n for n in documented if n.startswith("ROLLCALL_")} - _env_names(Settings)
    assert not unknown, f".env.example names settings that do not exist: {sorted(unknown)}"
