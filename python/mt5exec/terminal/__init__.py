"""Generated worker-protocol code lives in mt5exec.terminal.v1."""
