"""Public ids: a type prefix and random hex, so ids reveal neither counts nor order across tenants."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"
