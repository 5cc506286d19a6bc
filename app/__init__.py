"""Rollcall's service. Its first import sets OpenMP's wait policy, before any model module can
import torch (see ``ml.openmp``): every way in (``uvicorn app.main:app``, ``python -m app.importer``)
goes through here."""

from ml.openmp import prefer_passive_waits

prefer_passive_waits()
