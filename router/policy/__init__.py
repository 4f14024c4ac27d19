"""The policy: pydantic models of the YAML file, loading, checking and viewing.

``from router.policy import Policy, load_policy, ...`` keeps working: every public name of
the section modules is re-exported here.
"""

from .model import *  # noqa: F401,F403
from .model import __all__ as _model_all

__all__ = list(_model_all)
