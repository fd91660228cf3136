//! Per-tool policy: the PolicyLayer-compatible model, its strict loader, evaluation and rate limits.
