"""The cascade: answer signals, measures, the pure verdict and the escalation share cap."""
