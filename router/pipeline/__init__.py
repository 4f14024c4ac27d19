"""Orchestration of the request path: the :class:`Router` façade and the stages it runs."""

from .router import Routing, RoutedAnswer, RoutedStream, Router, new_request_id

__all__ = ["Router", "Routing", "RoutedAnswer", "RoutedStream", "new_request_id"]
