"""Training and evaluation of difficulty classifiers on real outcome data.

- :mod:`training.datasets`: loaders of every labelled set (and a user's JSONL) into one schema;
- :mod:`training.embedding_cache`: embeddings cached on disk by content hash;
- :mod:`training.models`: the model families (logistic, ridge, kNN, boosting, MLP, stack);
- :mod:`training.evaluate`: k-fold / grouped cross-validation and baselines;
- :mod:`training.metrics`: PGR, APGR, CPT, strong share for 95% quality, AUROC, bootstrap;
- :mod:`training.calibrate`: thresholds for a target cloud share or quality;
- :mod:`training.train`: artifacts and their cards; :mod:`training.plot`: quality curves.

Reads ``../shared/data`` (or ``$SLM_ROUTER_DATA``) at run time; nothing is copied into the
repository. The ``slm-router train|eval|calibrate|score`` commands are the user interface.
"""
