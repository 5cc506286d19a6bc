"""Rollcall's face pipeline: numpy RGB images in, frozen dataclasses out. No HTTP, no storage."""

import os

# OpenMP threads that spin while waiting steal the CPU from each other and from the service's
# other threads; on 2 cores that made MTCNN ~10x slower in wall time. Must be set before torch
# loads its OpenMP runtime, and every model in this package imports torch after this line.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
