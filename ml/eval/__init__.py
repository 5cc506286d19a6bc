"""Built-in evaluations: ``python -m ml.eval {lfw,oneshot,detection} ...``."""
