"""Packaged default templates (JSON) of mt5exec.templates; copy one to customise it."""
