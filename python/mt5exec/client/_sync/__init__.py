# Generated from ../_async by scripts/gen_sync_client.py: edit that, not this.
"""The client, written once for asyncio (_async) and generated from it for blocking calls
(_sync, by scripts/gen_sync_client.py)."""
