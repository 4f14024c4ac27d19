"""``python -m router.cli``: the ``slm-router`` command line."""

from .main import main

main()
