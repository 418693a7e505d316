"""Redaction: connection strings never show passwords in errors, logs or CLI output."""

from __future__ import annotations

import pytest

from session_store_mongo.client import hosts_in_url
from session_store_mongo.redact import password_of_url, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mongodb://alice:s3cr%40t@db.example:27017/app?authSource=admin",
         "mongodb://alice:***@db.example:27017/app?authSource=admin"),
        ("mongodb+srv://bob:pw@cluster0.example.net/?retryWrites=true",
         "mongodb+srv://bob:***@cluster0.example.net/?retryWrites=true"),
        ("mongodb://carol@h1:1,h2:2/?authMechanism=MONGODB-X509",
         "mongodb://carol@h1:1,h2:2/?authMechanism=MONGODB-X509"),
        ("mongodb://127.0.0.1:27017/?directConnection=true",
         "mongodb://127.0.0.1:27017/?directConnection=true"),
        ("mongodb://dave:p:w@[::1", "mongodb://dave:***@[::1"),
        ("mongodb://h/?tls=true&tlsCertificateKeyFilePassword=pem-pw&appName=x",
         "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&appName=x"),
        ("mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:t",
         "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=***"),
    ],
)  # fmt: skip
def test_redact_url_hides_secrets(url: str, shown: str) -> None:
    """Passwords and secret URL options become ``***``; everything else stays readable."""
    assert redact_url(url) == shown


def test_password_and_hosts_are_extracted() -> None:
    """The password is found (decoded) for scrubbing; hosts come without credentials."""
    url = "mongodb://app:s3cr%40t@db1:1,db2:2/app?tls=true"
    assert password_of_url(url) == "s3cr@t"
    assert hosts_in_url(url) == "db1:1,db2:2"
    assert password_of_url("mongodb://db1/") is None


def test_redact_text_scrubs_known_secrets_anywhere() -> None:
    """A known secret is removed from any message, even outside a URL."""
    message = "auth failed for app with s3cr@t at mongodb://app:s3cr%40t@db1/"
    assert (
        redact_text(message, ["s3cr@t"]) == "auth failed for app with *** at mongodb://app:***@db1/"
    )
