"""The policy: pydantic models of the YAML file, one module per section, loading, checking
and viewing.

``from router.policy import Policy, load_policy, ...`` keeps working: the public names of
the sections, :mod:`~router.policy.model` and :mod:`~router.policy.load` are re-exported
here. The file check (:mod:`~router.policy.check`) and the redacted view
(:mod:`~router.policy.view`) are imported from their modules.
"""

from .base import AUTO, NEEDS, hash_api_key
from .env import interpolate_env
from .escalation import CombinerConfig, EscalationConfig, EscalationOverride
from .guards import BudgetLimit, BudgetsConfig, CacheConfig, RateLimitsConfig, SemanticCacheConfig, ThresholdShift
from .keys import ApiKey, Overlay
from .load import load_policy, policy_from_dict
from .model import Policy
from .references import ReferenceProblem, reference_problems
from .routing import ClassifierConfig, RoutingConfig, SessionConfig
from .rules import Rule, RuleAction, RuleMatch
from .server import LogConfig, ServerConfig, StoreConfig
from .shadow import ShadowConfig
from .tiers import Capabilities, LocalRuntime, Price, TierConfig

__all__ = [
    "Price", "LocalRuntime", "Capabilities", "TierConfig", "ClassifierConfig", "RoutingConfig", "SessionConfig",
    "EscalationConfig", "EscalationOverride", "CombinerConfig", "RuleMatch", "RuleAction", "Rule",
    "ApiKey", "Overlay", "LogConfig", "ServerConfig", "StoreConfig", "CacheConfig", "SemanticCacheConfig",
    "BudgetLimit", "ThresholdShift", "BudgetsConfig", "RateLimitsConfig", "ShadowConfig", "Policy",
    "ReferenceProblem", "NEEDS", "AUTO", "load_policy", "policy_from_dict", "interpolate_env", "hash_api_key",
    "reference_problems",
]
