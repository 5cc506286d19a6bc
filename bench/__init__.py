"""Benchmarks: ``python -m bench`` measures Rollcall side by side with face_recognition (dlib).

Every benchmark command goes through this package first, so it sets OpenMP's wait policy before any
model module can import torch (see ``ml.openmp``)."""

from ml.openmp import prefer_passive_waits

prefer_passive_waits()
