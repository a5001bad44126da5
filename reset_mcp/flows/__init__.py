"""The use cases: the only code that opens store transactions (besides outbox/)."""
