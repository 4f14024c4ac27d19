"""Learning from the router's own traffic (``slm-router learn``).

- :mod:`.keep`: what a log row keeps for learning (``log.keep_for_learning``) and reading it back;
- :mod:`.labels`: labels from the log: judged shadow samples, escalations, explicit feedback;
- :mod:`.candidate`: the candidate router stacked on the active (prior) scorer, its
  shrinkage chosen by inner cross-validation;
- :mod:`.evaluate`: candidate vs active on a time split with bootstrap intervals (APGR,
  retention, cost);
- :mod:`.gate`: the promotion test: out-of-time predictions pooled over rolling blocks, a
  paired one-sided log-loss test against the recalibrated active router;
- :mod:`.run`: the whole ``learn`` run from a log to an artifact and a candidate policy.

Everything but :mod:`.run` is pure (data in, data out).
"""
