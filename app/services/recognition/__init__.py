"""The face-recognition machinery the features share: each class's gallery built from the
stored embeddings (:mod:`.gallery`), the pipeline behind a concurrency limit (:mod:`.inference`),
the projection head's training (:mod:`.heads`), the back-fill of a model added later
(:mod:`.backfill`), and the annotated copies of class photos (:mod:`.drawing`). None of it knows
HTTP; the features reach it through :class:`app.services.context.Context`."""
