"""The request as the router reads it: parsing, features, the caller's identity, language."""
