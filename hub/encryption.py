"""Parquet modular encryption for restricted datasets, with a local KMS whose master keys come from the
environment.

``HUB_KMS_MASTER_KEYS`` holds ``id:base64key`` pairs separated by commas (16, 24 or 32-byte AES keys),
e.g. ``hub_footer:q2Fk...==``. Parquet generates a data key per file, the local KMS wraps it with the
master key (AES-GCM) and stores it in the file's key material; only a holder of the master key can read
the file, footer included. Keys never appear in logs, metadata or manifests — only their identifiers.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENV_VAR = "HUB_KMS_MASTER_KEYS"
FOOTER_KEY_ID = "hub_footer"
ALGORITHM = "AES_GCM_V1"


class KeyConfigError(ValueError):
    """A key problem, in one line that names the variable and key identifier but never the key."""


def master_keys(value: str | None = None) -> dict[str, bytes]:
    if value is None:
        from hub.settings import env_value  # the one reader of the process environment

        value = env_value(ENV_VAR)
    keys: dict[str, bytes] = {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id:
            raise KeyConfigError(f"{ENV_VAR}: expected id:base64key pairs separated by commas")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise KeyConfigError(f"{ENV_VAR}: key {key_id!r} is not valid base64") from None
        if len(key) not in (16, 24, 32):
            raise KeyConfigError(f"{ENV_VAR}: key {key_id!r} is {len(key)} bytes; AES needs 16, 24 or 32")
        keys[key_id] = key
    return keys


class LocalKmsClient(pe.KmsClient):
    """Wraps Parquet's data keys with master keys held in memory (from the environment)."""

    def __init__(self, keys: dict[str, bytes]):
        super().__init__()
        self._keys = keys

    def _key(self, key_id: str) -> bytes:
        if key_id not in self._keys:
            raise KeyConfigError(f"{ENV_VAR} has no master key {key_id!r}")
        return self._keys[key_id]

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self._key(master_key_identifier)).encrypt(nonce, key_bytes, master_key_identifier.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        raw = base64.b64decode(wrapped_key)
        try:
            return AESGCM(self._key(master_key_identifier)).decrypt(raw[:12], raw[12:],
                                                                    master_key_identifier.encode())
        except InvalidTag:
            raise KeyConfigError(f"{ENV_VAR}: master key {master_key_identifier!r} does not open this file "
                                 "(a different key wrote it)") from None


def _factory(keys: dict[str, bytes]) -> pe.CryptoFactory:
    return pe.CryptoFactory(lambda _config: LocalKmsClient(keys))


def encryption_properties(keys: dict[str, bytes]):
    """Every column and the footer encrypted (uniform encryption) under the footer master key."""
    if FOOTER_KEY_ID not in keys:
        raise KeyConfigError(f"{ENV_VAR} needs a key named {FOOTER_KEY_ID!r} to publish restricted datasets")
    config = pe.EncryptionConfiguration(footer_key=FOOTER_KEY_ID, uniform_encryption=True,
                                        encryption_algorithm=ALGORITHM, plaintext_footer=False)
    return _factory(keys).file_encryption_properties(pe.KmsConnectionConfig(), config)


def decryption_properties(keys: dict[str, bytes]):
    return _factory(keys).file_decryption_properties(pe.KmsConnectionConfig())


def read_encrypted(path: str | Path, keys: dict[str, bytes] | None = None) -> pa.Table:
    """Read a restricted dataset's file (keys from the environment unless given)."""
    keys = master_keys() if keys is None else keys
    return pq.ParquetFile(str(path), decryption_properties=decryption_properties(keys)).read()


def new_key() -> str:
    """A fresh 256-bit master key, base64 (for ``HUB_KMS_MASTER_KEYS=<id>:<key>``; the tests use it).
    There is no ``hub`` command for it: ``python -c 'from hub.encryption import new_key; print(new_key())'``."""
    return base64.b64encode(os.urandom(32)).decode()
