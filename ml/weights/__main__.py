from ml.weights.cli import main

raise SystemExit(main())
