"""Keys derived from the master secret, AES-GCM for personal data, HMAC blind indexes, token hashes.

Only the `cryptography` library's primitives are used; nothing here invents crypto.
Ciphertext layout: key id (2 bytes, big endian) | nonce (12 bytes) | AES-GCM ciphertext+tag.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import unicodedata
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
KEY_ID_BYTES = 2


class DecryptionError(Exception):
    """Ciphertext was tampered with or made under a key we do not have."""


def derive_key(master: bytes, purpose: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(
        master
    )


def hash_token(token: str) -> bytes:
    """Session, verification and reset tokens are stored only as this SHA-256 digest."""
    return hashlib.sha256(token.encode()).digest()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def normalise_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().casefold()


def normalise_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


@dataclass
class PiiCipher:
    """Encrypts personal data under the current key id; decrypts under any known key id."""

    master: bytes
    current_key_id: int = 1
    # When the current key id was last read from the database (time.monotonic()); see keys.py.
    key_checked_at: float = 0.0
    _keys: dict[int, AESGCM] = field(default_factory=dict, repr=False)
    _sealers: dict[str, AESGCM] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index_key = derive_key(self.master, "tekudasai/blind-index/v1")

    def _aead(self, key_id: int) -> AESGCM:
        if key_id not in self._keys:
            self._keys[key_id] = AESGCM(derive_key(self.master, f"tekudasai/pii/{key_id}"))
        return self._keys[key_id]

    def encrypt(self, plaintext: str, *, context: str, key_id: int | None = None) -> bytes:
        key_id = self.current_key_id if key_id is None else key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead(key_id).encrypt(nonce, plaintext.encode(), context.encode())
        return key_id.to_bytes(KEY_ID_BYTES, "big") + nonce + sealed

    def decrypt(self, blob: bytes, *, context: str) -> str:
        key_id = int.from_bytes(blob[:KEY_ID_BYTES], "big")
        nonce = blob[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES]
        try:
            plain = self._aead(key_id).decrypt(
                nonce, blob[KEY_ID_BYTES + NONCE_BYTES :], context.encode()
            )
        except InvalidTag as exc:
            raise DecryptionError(f"cannot decrypt {context} (key id {key_id})") from exc
        return plain.decode()

    def encrypt_optional(self, plaintext: str | None, *, context: str) -> bytes | None:
        return None if plaintext is None else self.encrypt(plaintext, context=context)

    def decrypt_optional(self, blob: bytes | None, *, context: str) -> str | None:
        return None if blob is None else self.decrypt(blob, context=context)

    def seal(self, data: bytes, *, purpose: str) -> bytes:
        """Encrypt and authenticate short-lived state (e.g. OAuth state) under a purpose key."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._sealer(purpose).encrypt(nonce, data, purpose.encode())

    def unseal(self, blob: bytes, *, purpose: str) -> bytes:
        try:
            return self._sealer(purpose).decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], purpose.encode()
            )
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(f"cannot unseal {purpose}") from exc

    def _sealer(self, purpose: str) -> AESGCM:
        name = f"seal:{purpose}"
        if name not in self._sealers:
            self._sealers[name] = AESGCM(derive_key(self.master, f"tekudasai/seal/{purpose}"))
        return self._sealers[name]

    @staticmethod
    def key_id_of(blob: bytes) -> int:
        return int.from_bytes(blob[:KEY_ID_BYTES], "big")

    def blind_index(self, value: str, *, kind: str) -> bytes:
        """Keyed HMAC-SHA256 of a normalised value: equality lookups without the plaintext."""
        return hmac.new(self._index_key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def email_index(self, email: str) -> bytes:
        return self.blind_index(normalise_email(email), kind="email")

    def name_index(self, name: str) -> bytes:
        return self.blind_index(normalise_name(name), kind="name")
