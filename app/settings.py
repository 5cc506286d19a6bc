"""Service settings, read from the environment and ``.env``, validated at start-up.

The S3 variables keep the names of the operator's existing env file (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``S3_BUCKET_NAME``, plus ``S3_ENDPOINT_URL`` and ``AWS_REGION``); everything
else is prefixed ``ROLLCALL_``. Every setting is documented in ``.env.example``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.api_keys import parse_api_keys
from app.core.ids import SLUG_PATTERN
from app.core.images import ANNOTATED_MAX_SIDE
from app.core.policy import MAX_RETENTION_DAYS, RETENTION_DEFAULTS, RetentionPolicy
from app.storage import Keyring, ServerSideEncryption
from app.storage.encryption import DataKey, parse_old_keys
from ml.config import PipelineConfig
from ml.matching import MAX_KNOWN_STRANGERS
from ml.samples import DEFAULT_AUTO_CONFIRM, DEFAULT_MAX_SAMPLES, AutoConfirmRule

LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


class Settings(BaseSettings):
    """Everything the service can be configured with; defaults run it locally with no bucket."""

    model_config = SettingsConfigDict(
        env_prefix="ROLLCALL_",
        env_file=".env",
        env_file_encoding="utf-8",
        # ``S3_BUCKET_NAME=`` in an env file means "not set", not "a bucket named ''".
        env_ignore_empty=True,
        # The operator's env file may hold variables meant for other programs.
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
        # A refused value is never quoted back: it may be a key or a password (start-up logs).
        hide_input_in_errors=True,
    )

    # --- storage: an S3 bucket when ``S3_BUCKET_NAME`` is set, else a local folder -------------
    s3_bucket_name: str | None = Field(
        default=None, validation_alias=AliasChoices("S3_BUCKET_NAME", "s3_bucket_name")
    )
    s3_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("S3_ENDPOINT_URL", "s3_endpoint_url")
    )
    aws_region: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_REGION", "aws_region")
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID", "aws_access_key_id")
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
    )
    create_bucket: bool = Field(
        default=False, description="Create the bucket at start-up if it does not exist."
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder holding the data when no bucket is configured (same layout as S3).",
    )
    s3_sse: ServerSideEncryption | None = Field(
        default=None,
        description="S3 server-side encryption asked for on every write: AES256 (SSE-S3) or "
        "aws:kms (SSE-KMS); unset = the bucket's default.",
    )
    s3_sse_kms_key_id: str | None = Field(
        default=None,
        description="The KMS key of SSE-KMS (its id, ARN or alias); unset = the account's "
        "default key for S3.",
    )

    # --- encryption at rest (app/storage/encryption.py) -----------------------------------------
    data_key: SecretStr | None = Field(
        default=None,
        description="AES-256 key (base64 of 32 random bytes) that encrypts every stored object; "
        "unset = stored as is.",
    )
    data_keys_old: SecretStr | None = Field(
        default=None,
        description="Former data keys (base64, separated by ';'), still used to read objects "
        "written under them.",
    )

    # --- models ------------------------------------------------------------------------------
    detector: Literal["mtcnn", "yolo"] = "mtcnn"
    yolo_weights: Path | None = Field(
        default=None, description="YOLOv8-face ONNX weights; required when detector is yolo."
    )
    embedder_weights: Path | None = Field(
        default=None,
        description=(
            "FaceNet as an .onnx export, or a facenet-pytorch VGGFace2 .pt exported into the model "
            "cache on first start (`python -m ml.export --embedder-weights`); unset = CASIA-WebFace."
        ),
    )
    model_cache_dir: Path | None = Field(
        default=None,
        # ml.weights reads ROLLCALL_MODEL_CACHE; both names mean the same folder.
        validation_alias=AliasChoices(
            "ROLLCALL_MODEL_CACHE_DIR", "ROLLCALL_MODEL_CACHE", "model_cache_dir"
        ),
        description="Where the exported ONNX models are cached (baked into the image).",
    )
    device: str = "cpu"
    intra_op_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="onnxruntime threads per model inference; unset = one per physical core.",
    )
    min_face_size: int = Field(default=20, ge=8, le=1000)
    min_recognisable_face: int = Field(
        default=PipelineConfig.min_recognisable_face,
        ge=8,
        le=1000,
        description="Faces smaller than this (pixels) are reported as too small, not recognised.",
    )
    n_views: int = Field(default=15, ge=1, le=64)
    alignment: Literal["margin", "similarity"] | None = Field(
        default=None,
        description="How faces are cropped for the embedder; unset = the pipeline default.",
    )
    segmentation: bool = False
    embedders: Literal["facenet", "facenet+dlib"] | None = Field(
        default=None,
        description=(
            "Face models whose scores are fused: facenet+dlib (FaceNet with dlib's ResNet) or "
            "facenet alone; unset = the pipeline default (facenet+dlib, measured better)."
        ),
    )
    use_head: bool | None = Field(
        default=None, description="Use the per-class trained head; unset = the pipeline default."
    )
    unknown_threshold: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description=(
            "Cohort-normalised similarity below which a face is unknown; unset = calibrated default."
        ),
    )

    # --- service behaviour -------------------------------------------------------------------
    # Measured on the face-api.js cast with the default pipeline (FaceNet fused with dlib,
    # 2026-11-29): another photo of an enrolled person scores 0.47-0.86 against them (median 0.72,
    # 32 photos), the most similar other person at most 0.39 (median 0.27). FaceNet alone, on its
    # raw cosine, had 0.56-0.84 and 0.52, and used 0.6.
    duplicate_warning_similarity: float = Field(
        default=0.5,
        ge=-1.0,
        le=1.0,
        description="Warn at enrolment when a face is this similar (fused similarity, on "
        "FaceNet's cosine scale) to another student.",
    )
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_photos_per_request: int = Field(default=10, ge=1, le=100)
    inference_concurrency: int = Field(
        default=1, ge=1, le=64, description="Pipeline calls allowed to run at the same time."
    )
    max_faces_per_photo: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Recognition refuses (422) a photo with more faces than this.",
    )
    annotated_max_side: int = Field(
        default=ANNOTATED_MAX_SIDE,
        ge=100,
        le=100_000,
        description="Longer side (pixels) of the annotated photo returned and stored; larger "
        "photos are shrunk (the original is stored as uploaded).",
    )
    # --- roster imports (POST /v1/imports/..., python -m app.roster_import) ----------------------
    import_max_archive_bytes: int = Field(
        default=2 * 1024**3,
        gt=0,
        description="Largest photos archive (zip) an import accepts, bytes: a school's ID "
        "photos, about 0.1-0.5 MB each.",
    )
    import_max_photos: int = Field(
        default=20_000, ge=1, description="Most files in a photos archive."
    )
    # --- learning from confirmed faces (ml/samples.py has the measurements) --------------------
    learn_from_photos: bool = Field(
        default=True,
        description="Keep faces a teacher named, and faces recognised with a high margin, as "
        "extra gallery samples of the student.",
    )
    auto_confirm_margin: float = Field(
        default=DEFAULT_AUTO_CONFIRM.min_score_margin,
        ge=0.0,
        le=2.0,
        description="A recognised face becomes a sample only this far above the unknown "
        "threshold (and auto_confirm_gap ahead of any other student).",
    )
    auto_confirm_gap: float = Field(
        default=DEFAULT_AUTO_CONFIRM.min_runner_up_gap,
        ge=0.0,
        le=2.0,
        description="How far (fused similarity) the named student must be ahead of the next one "
        "for a recognised face to become a sample.",
    )
    max_samples_per_student: int = Field(
        default=DEFAULT_MAX_SAMPLES,
        ge=0,
        le=64,
        description="Confirmed faces kept per student (the newest half, then the most diverse).",
    )
    # --- strangers (docs/accuracy.md, "Telling strangers apart") ------------------------------------------
    school_cohort: bool = Field(
        default=True,
        description="Compare each face also with the students of the deployment's other classes: "
        "a face is never named as a student of this class when a student of another class "
        "matches it at least as well, and the stranger threshold adapts to the school's size.",
    )
    school_cohort_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How old the school-wide cohort may get before it is rebuilt in the "
        "background (a student enrolled in another class counts from then on).",
    )
    remember_strangers: bool = Field(
        default=True,
        description="Keep a face a teacher says is nobody of the class as a known stranger of "
        "the class: faces like it are not named afterwards.",
    )
    max_known_strangers: int = Field(
        default=MAX_KNOWN_STRANGERS,
        ge=0,
        le=500,
        description="Known strangers kept per class (the newest).",
    )
    # --- retention (docs/data-protection.md: the choice of these defaults) ---------------------
    session_photo_retention_days: int = Field(
        default=RETENTION_DEFAULTS.session_photo_days,
        ge=0,
        le=MAX_RETENTION_DAYS,
        description="Days a class photo and its annotated copy are kept (the attendance facts "
        "stay); 0 = forever. A class may override it (PATCH /v1/classes/{class_id}).",
    )
    student_inactive_retention_days: int = Field(
        default=RETENTION_DEFAULTS.student_inactive_days,
        ge=0,
        le=MAX_RETENTION_DAYS,
        description="Erase a student enrolled this many days ago who attended no session dated "
        "within as many days; 0 = never. A class may override it.",
    )
    purge_interval_hours: int = Field(
        default=6,
        ge=0,
        le=24 * 7,
        description="The service purges what retention allows at start-up and then this often; "
        "0 = never in the service (run `python -m app.purge` from cron instead).",
    )
    log_level: LogLevel = "INFO"

    # --- access control (see app/security.py) --------------------------------------------------
    api_keys: SecretStr | None = Field(
        default=None,
        description=(
            "API keys required on /v1: `key1;key2:class-a,class-b` (a key, optionally limited to "
            "some classes after ':'); unset = open."
        ),
    )
    legacy_auth: Literal["open", "api-key"] = Field(
        default="open",
        description="The mobile client's two calls: open (compatible) or api-key (locked).",
    )
    legacy_class: str = Field(
        default="default",
        pattern=SLUG_PATTERN,
        description="The class the mobile client's two calls act on (created on first use).",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Origins allowed to call the API from a browser (comma-separated); empty = none.",
    )

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            # Refuses short, malformed or duplicate keys at start-up; the message never quotes one.
            parse_api_keys(value.get_secret_value())
        return value

    @field_validator("data_key")
    @classmethod
    def _check_data_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            # Refuses a malformed key at start-up; the message never quotes it.
            DataKey.from_base64(value.get_secret_value())
        return value

    @field_validator("data_keys_old")
    @classmethod
    def _check_old_data_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_old_keys(value.get_secret_value())
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o for o in re.split(r"[,\s]+", value) if o)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and _ORIGIN.fullmatch(origin) is None:
                raise ValueError(
                    f"ROLLCALL_CORS_ORIGINS: {origin!r} is not an origin like "
                    "https://console.example.org (scheme, host, optional port; no path) or *"
                )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("S3_ENDPOINT_URL must start with http:// or https://")
        return value

    @field_validator("yolo_weights", "embedder_weights")
    @classmethod
    def _check_weights_file(cls, value: Path | None) -> Path | None:
        # Fail at start-up with a clear message rather than deep inside model loading.
        if value is not None and not value.is_file():
            raise ValueError(f"weights file not found: {value}")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.detector == "yolo" and self.yolo_weights is None:
            raise ValueError("ROLLCALL_DETECTOR=yolo needs ROLLCALL_YOLO_WEIGHTS (an ONNX file)")
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
        if self.legacy_auth == "api-key" and self.api_keys is None:
            raise ValueError("ROLLCALL_LEGACY_AUTH=api-key needs ROLLCALL_API_KEYS")
        if self.data_keys_old is not None and self.data_key is None:
            raise ValueError(
                "ROLLCALL_DATA_KEYS_OLD needs ROLLCALL_DATA_KEY (the key new data uses)"
            )
        self.data_keyring()  # the old keys must differ from the current one
        if self.s3_sse_kms_key_id is not None and self.s3_sse != "aws:kms":
            raise ValueError("ROLLCALL_S3_SSE_KMS_KEY_ID needs ROLLCALL_S3_SSE=aws:kms")
        if self.s3_sse is not None and not self.s3_bucket_name:
            raise ValueError(
                "ROLLCALL_S3_SSE needs S3_BUCKET_NAME (a folder is not encrypted by S3)"
            )
        return self

    @property
    def max_request_bytes(self) -> int:
        """Whole-request limit: every allowed photo at its maximum size, plus form overhead."""
        return self.max_upload_bytes * self.max_photos_per_request + 1024 * 1024

    def pipeline_config(self) -> PipelineConfig:
        """The :class:`ml.config.PipelineConfig` these settings describe."""

        overrides: dict[str, Any] = {}
        if self.use_head is not None:
            # Unset keeps the pipeline's measured default instead of guessing it here.
            overrides["use_head"] = self.use_head
        if self.alignment is not None:
            overrides["alignment"] = self.alignment
        if self.embedders is not None:
            overrides["embedders"] = tuple(self.embedders.split("+"))
        return PipelineConfig(
            detector=self.detector,
            yolo_weights=self.yolo_weights,
            embedder_weights=self.embedder_weights,
            model_cache_dir=self.model_cache_dir,
            min_face_size=self.min_face_size,
            min_recognisable_face=self.min_recognisable_face,
            segmentation=self.segmentation,
            n_views=self.n_views,
            unknown_threshold=self.unknown_threshold,
            device=self.device,
            intra_op_threads=self.intra_op_threads,
            **overrides,
        )

    def retention_policy(self) -> RetentionPolicy:
        """The deployment's retention (each class may override it)."""
        return RetentionPolicy(
            self.session_photo_retention_days, self.student_inactive_retention_days
        )

    def auto_confirm_rule(self) -> AutoConfirmRule:
        return AutoConfirmRule(self.auto_confirm_margin, self.auto_confirm_gap)

    def storage_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`app.storage.create_object_store`."""
        return {
            "bucket": self.s3_bucket_name,
            "endpoint_url": self.s3_endpoint_url,
            "region": self.aws_region,
            "access_key_id": (
                self.aws_access_key_id.get_secret_value() if self.aws_access_key_id else None
            ),
            "secret_access_key": (
                self.aws_secret_access_key.get_secret_value()
                if self.aws_secret_access_key
                else None
            ),
            "data_dir": self.data_dir,
            "data_keys": self.data_keyring(),
            "server_side_encryption": self.s3_sse,
            "sse_kms_key_id": self.s3_sse_kms_key_id,
        }

    def data_keyring(self) -> Keyring | None:
        """The data keys of encryption at rest; ``None`` when ``ROLLCALL_DATA_KEY`` is unset."""
        if self.data_key is None:
            return None
        old = self.data_keys_old.get_secret_value() if self.data_keys_old is not None else None
        return Keyring.parse(self.data_key.get_secret_value(), old)
