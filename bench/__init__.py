"""Benchmarks: ``python -m bench`` measures Rollcall side by side with face_recognition (dlib)."""

import os

# The benchmarks also time PyTorch models (stock facenet-pytorch MTCNN, the torch references of the
# ONNX models). Torch's OpenMP threads that spin while waiting steal the CPU from each other and
# from onnxruntime's; on 2 cores that made MTCNN ~10x slower in wall time. The service no longer
# loads torch (ml/ used to set this for it), so the benchmarks set it before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
