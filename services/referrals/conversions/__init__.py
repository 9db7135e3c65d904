"""Conversions: postbacks (JSON and GET), their idempotency, attribution and its explanation, fraud holds."""
