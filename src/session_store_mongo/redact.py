"""Keep passwords out of errors, logs and CLI output.

Usage::

    from session_store_mongo.redact import password_of_url, redact_text, redact_url

    redact_url("mongodb://app:s3cret@db1,db2/?tls=true")   # 'mongodb://app:***@db1,db2/?tls=true'
    redact_text(driver_message, [password_of_url(url)])    # the password scrubbed anywhere
    is_secret_parameter("tlsCertificateKeyFilePassword")    # True: its value is never shown
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["is_secret_parameter", "password_of_url", "redact_text", "redact_url"]

_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@", re.I
)
_SECRET_PARAMS = re.compile(
    r"(?P<name>(?:password|tlsCertificateKeyFilePassword|authMechanismProperties|"
    r"secret|token)[^=&\s]*=)(?P<value>[^&\s]*)",
    re.I,
)


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret query parameters replaced by ``***``."""
    return redact_text(url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from any text: URLs with passwords, secret parameters, known secrets."""
    text = _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _SECRET_PARAMS.sub(lambda m: f"{m['name']}***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def is_secret_parameter(name: str) -> bool:
    """Whether a URL parameter of this name holds a secret (``redact_text`` hides its value)."""
    return _SECRET_PARAMS.fullmatch(f"{name}=") is not None


def password_of_url(url: str) -> str | None:
    """Return the URL's password (decoded), so that it can be scrubbed from driver messages."""
    match = _CREDENTIALS.search(url)
    return unquote(match["pw"]) if match and match["pw"] else None
