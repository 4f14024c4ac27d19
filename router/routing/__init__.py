"""Routing: rules, the threshold, capabilities and the pure decision of the first tier."""
