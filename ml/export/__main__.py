"""``python -m ml.export``: see :mod:`ml.export.cli`."""

from ml.export.cli import main

raise SystemExit(main())
