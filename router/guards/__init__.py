"""Guards around tier calls: budgets, rate limits and the response cache."""
