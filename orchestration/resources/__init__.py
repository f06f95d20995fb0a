"""Resources and limits (DESIGN §6.6): admission of instances under concurrency limits,
idempotent starts, rate limits, budgets and token quotas, and the cost ledger."""
