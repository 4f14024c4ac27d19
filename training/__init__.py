"""Training and evaluation of difficulty classifiers on real outcome data.

Reads ``../shared/data`` (or ``$SLM_ROUTER_DATA``) at run time; nothing is copied into
the repository.
"""
