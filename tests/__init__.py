"""Rollcall's tests. Their first import sets OpenMP's wait policy before any model module can
import torch (see ``ml.openmp``); pytest imports this package before any conftest."""

from ml.openmp import prefer_passive_waits

prefer_passive_waits()
