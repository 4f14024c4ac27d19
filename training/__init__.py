"""Training and evaluation of difficulty classifiers on real outcome data.

- :mod:`training.datasets`: loaders of every labelled set (and a user's JSONL) into one schema;
- :mod:`training.embedding_cache`: embeddings cached on disk by content hash;
- :mod:`training.models`: the model families (logistic, ridge, kNN, boosting, MLP, stack, transfer);
- :mod:`training.families`: the families of leave-one-family-out (MMLU subject groups, each set, each file);
- :mod:`training.lofo`: out-of-family scores and per-family tables with paired bootstrap intervals;
- :mod:`training.protocol`: recipes and the baselines (random, length, keyword rule, logistic
  regression on the embedding, oracle); :mod:`training.assess`: LOFO, 5-fold and unseen subjects;
- :mod:`training.report`: tables as card JSON and markdown, the goal check;
- :mod:`training.task_types`: task-type prototypes; :mod:`training.rules_card`: the rule's card;
- :mod:`training.eval_run`: ``slm-router eval``;
- :mod:`training.evaluate`: k-fold / grouped cross-validation (older kinds) and held-out calibration;
- :mod:`training.metrics`: PGR, APGR, CPT, strong share for 95% quality, AUROC, bootstrap;
- :mod:`training.calibrate`: thresholds for a target cloud share or quality;
- :mod:`training.train`: artifacts and their cards; :mod:`training.plot`: quality curves.

Reads ``../shared/data`` (or ``$SLM_ROUTER_DATA``) at run time; nothing is copied into the
repository. The ``slm-router train|eval|calibrate|score`` commands are the user interface.
"""
