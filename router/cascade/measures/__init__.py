"""Extra measurements of a local answer (self-check, consistency, verifier)."""
