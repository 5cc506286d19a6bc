"""``python -m ml.weights``: see :mod:`ml.weights.cli`."""

from ml.openmp import prefer_passive_waits

prefer_passive_waits()  # before ml.weights.cli imports torch

from ml.weights.cli import main  # noqa: E402

raise SystemExit(main())
