"""Identity, permissions, national cryptography and the audit log (安全与审计)."""
