"""Signals: trade signals an external source publishes (PublishSignal), signed with
HMAC-SHA256 under the source's secret (docs/signals.md). ``canonical`` defines the signed
bytes, ``sources`` reads the secrets, ``nonces`` keeps replays out across restarts; the
service is ``mt5exec.services.signals``."""
