"""One place that takes secrets out of text before it is written anywhere (audit rows, run metadata,
Dagster's event log, the console).

``redact(text)`` removes

* the userinfo of every URL (``scheme://user:password@host`` becomes ``scheme://***@host``), and
* every known secret value: the values of environment variables whose names say they hold a secret
  (``*_SECRET``, ``*_TOKEN``, ``*_PASSWORD``, ``*_API_KEY``, ``*_KEY``, ``*_KEYS`` …), the password of any
  URL held in the environment (e.g. ``HUB_ACADEMIC_URL``), the resolved ``auth`` values of the sources in
  ``sources.yaml`` (:func:`register_source_secrets`), and anything passed to :func:`register_secret`.

Each secret is also removed in its percent-encoded and base64 (``user:password``, as in a Basic header)
forms. Secrets shorter than 4 characters are not searched for: they would redact ordinary words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
MIN_SECRET_LEN = 4
# Names of variables that hold secrets. Not PWD (the shell's working directory) nor *AUTH* / *CREDENTIALS*
# (XAUTHORITY, GOOGLE_APPLICATION_CREDENTIALS hold paths): redacting paths would hide where a problem is.
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|_KEYS?$)", re.I)
# scheme://userinfo@ — userinfo has no '/', whitespace or '@'.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"<>]+@")
_registered: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Remember values (tokens, passwords, keys) that must never be written anywhere."""
    for value in values:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LEN:
            _registered.add(value)


def register_source_secrets(sources: Iterable) -> None:
    """Register the resolved auth values (token, key, password) and URL passwords of ``sources``."""
    from connectors.config import interpolate

    for source in sources:
        auth = source.options.get("auth") or {}
        if isinstance(auth, dict):
            for name, value in auth.items():
                if name not in ("type", "header", "username") and isinstance(value, str):
                    try:
                        register_secret(interpolate(value))
                    except ValueError:
                        continue
        for name in ("base_url", "url"):
            value = source.options.get(name)
            if isinstance(value, str):
                try:
                    register_secret(_url_password(interpolate(value)))
                except ValueError:
                    continue


def _url_password(value: str) -> str | None:
    if "://" not in value or "@" not in value:
        return None
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return None
    return unquote(password) if password else None


def known_secrets(env: dict[str, str] | None = None) -> set[str]:
    if env is None:
        from hub.settings import environ  # the one reader of the process environment

        env = environ()
    found = set(_registered)
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_NAME.search(name):
            found.add(value)
            # HUB_KMS_MASTER_KEYS-style lists: id:base64key,id:base64key
            for item in value.split(","):
                found.add(item.strip())
                found.add(item.partition(":")[2].strip())
        password = _url_password(value)
        if password:
            found.add(password)
    return {s for s in found if len(s) >= MIN_SECRET_LEN}


def _forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote(secret)}
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


def redact(text: object, *, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL userinfo and every known secret value replaced by ``***``."""
    if text is None:
        return ""
    out = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", str(text))
    values = known_secrets() | {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
    forms: set[str] = set()
    for secret in values:
        forms |= _forms(secret)
    for form in sorted(forms, key=len, reverse=True):  # longest first: a secret containing another
        if form in out:
            out = out.replace(form, MASK)
    if "Basic " in out:  # a Basic header echoed back: base64 of user:password
        out = re.sub(r"Basic\s+[A-Za-z0-9+/=]{4,}", "Basic " + MASK, out)
    return out


def redact_value(value):
    """Redact strings inside metadata values (str, list, tuple, dict); other values pass through."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if type(value) in (list, tuple):  # exactly: Dagster's metadata values are named tuples
        return type(value)(redact_value(v) for v in value)
    return value
