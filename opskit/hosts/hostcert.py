"""OpenSSH host certificates (PROTOCOL.certkeys), checked as ssh 9.2 checks them against
``@cert-authority`` lines: a host certificate, signed by a CA a line names for this host,
valid now, listing the host name (or ``HostKeyAlias``) as a principal, without critical
options, signed with an algorithm of ssh's default ``CASignatureAlgorithms``. A certificate
that fails is not fatal by itself: ssh then judges the plain key inside it, and so does opskit.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any

CERT_SUFFIX = "-cert-v01@openssh.com"
HOST_CERT = 2
CA_SIGNATURE_ALGORITHMS = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "rsa-sha2-512",
    "rsa-sha2-256",
)
# plain key type -> number of key fields after the nonce
KEY_FIELDS = {"ssh-ed25519": 1, "ecdsa-sha2-nistp256": 2, "ecdsa-sha2-nistp384": 2,
              "ecdsa-sha2-nistp521": 2, "ssh-rsa": 2}


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("certificate truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def string(self) -> bytes:
        return self.take(self.u32())


def _pack(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


@dataclass(frozen=True)
class HostCert:
    plain_type: str
    plain_blob: bytes  # the certified key, as a plain key blob
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical: bytes
    ca_blob: bytes
    signature: bytes
    signed: bytes  # the bytes the CA signed


def parse(blob: bytes) -> HostCert:
    r = _Reader(blob)
    cert_type_name = r.string().decode("ascii")
    plain_type = cert_type_name.removesuffix(CERT_SUFFIX)
    if plain_type == cert_type_name or plain_type not in KEY_FIELDS:
        raise ValueError(f"unsupported certificate type {cert_type_name}")
    r.string()  # nonce
    fields = [r.string() for _ in range(KEY_FIELDS[plain_type])]
    r.u64()  # serial
    kind = r.u32()
    key_id = r.string().decode("utf-8", "replace")
    pr = _Reader(r.string())
    principals = []
    while pr.pos < len(pr.data):
        principals.append(pr.string().decode("utf-8", "replace"))
    after, before = r.u64(), r.u64()
    critical = r.string()
    r.string()  # extensions
    r.string()  # reserved
    ca_blob = r.string()
    signed = blob[:r.pos]
    signature = r.string()
    return HostCert(plain_type, _pack(plain_type.encode(), *fields), kind, key_id,
                    tuple(principals), after, before, critical, ca_blob, signature, signed)


def from_key(key: Any) -> HostCert | None:
    """The certificate paramiko received with the server key, or None for a plain key."""
    blob = getattr(key, "public_blob", None)
    if blob is None or not str(getattr(blob, "key_type", "")).endswith(CERT_SUFFIX):
        return None
    return parse(blob.key_blob)


def problem(cert: HostCert, name: str, now: float | None = None) -> str | None:
    """Why ssh would not accept this certificate for ``name`` (None: it would)."""
    import paramiko
    from paramiko.message import Message

    now = time.time() if now is None else now
    if cert.cert_type != HOST_CERT:
        return "not a host certificate"
    if now < cert.valid_after:
        return "certificate not yet valid"
    if now >= cert.valid_before:
        return "certificate expired"
    if cert.principals and name not in cert.principals:
        return f"{name} is not a listed principal ({', '.join(cert.principals)})"
    if cert.critical:
        return "certificate contains unsupported critical options"
    sig_alg = _Reader(cert.signature).string().decode("ascii", "replace")
    if sig_alg not in CA_SIGNATURE_ALGORITHMS:
        return f"certificate signed with disallowed algorithm {sig_alg}"
    try:
        ca_type = _Reader(cert.ca_blob).string().decode("ascii")
        ca = paramiko.PKey.from_type_string(ca_type, cert.ca_blob)
        ok = ca.verify_ssh_sig(cert.signed, Message(cert.signature))
    except Exception as exc:  # noqa: BLE001 - any failure to verify is a bad certificate
        return f"CA signature cannot be verified ({type(exc).__name__})"
    return None if ok else "bad CA signature"
