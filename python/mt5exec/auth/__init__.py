"""Authentication and authorization: who calls (principals), what they may do, and how they
prove it (API keys, JWT, client certificates)."""
