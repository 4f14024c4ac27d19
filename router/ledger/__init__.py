"""The ledger: pricing, the request log writer, shadow samples and metrics."""
