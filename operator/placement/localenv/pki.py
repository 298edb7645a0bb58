"""Certificates and keys for a throwaway local control plane.

One CA signs the API server's serving certificate and the client certificates; a separate RSA
key pair signs ServiceAccount tokens. Everything is written as PEM files into the cluster's
working directory and lives as long as that directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)
_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPki:
    ca: KeyPair
    serving: KeyPair
    admin: KeyPair
    service_account_key: Path  # private, signs tokens
    service_account_pub: Path  # public, verifies them


def _write_key(key: _PrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _issue(
    directory: Path,
    stem: str,
    subject: x509.Name,
    *,
    issuer: tuple[x509.Certificate, _PrivateKey] | None,
    is_ca: bool = False,
    server_names: tuple[str, ...] = (),
    usage: tuple[x509.ObjectIdentifier, ...] = (),
    validity: dt.timedelta = _VALIDITY,
    rsa_key: bool = False,
) -> tuple[x509.Certificate, _PrivateKey, KeyPair]:
    key: _PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    now = dt.datetime.now(dt.UTC)
    signer_name, signer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
    if server_names:
        alt_names: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt_names.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return cert, key, pair


def create_pki(directory: Path) -> ClusterPki:
    """Write a CA, the API server's serving pair, an admin client pair and SA signing keys."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key, ca = _issue(
        directory, "ca", _name("placement-local-ca"), issuer=None, is_ca=True
    )
    _, _, serving = _issue(
        directory,
        "apiserver",
        _name("kube-apiserver"),
        issuer=(ca_cert, ca_key),
        server_names=(
            "localhost",
            "127.0.0.1",
            "10.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        usage=(ExtendedKeyUsageOID.SERVER_AUTH,),
    )
    # system:masters is the bootstrap superuser group; the local components and tests use it.
    _, _, admin = _issue(
        directory,
        "admin",
        _name("admin", "system:masters"),
        issuer=(ca_cert, ca_key),
        usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_private, sa_public = directory / "sa.key", directory / "sa.pub"
    _write_key(sa_key, sa_private)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return ClusterPki(ca, serving, admin, sa_private, sa_public)


def create_serving_ca(
    directory: Path,
    stem: str,
    common_name: str,
    *,
    server_names: tuple[str, ...] = (),
    validity: dt.timedelta = _VALIDITY,
    rsa_key: bool = False,
) -> KeyPair:
    """A CA of its own for one component's serving certificates (webhooks, gRPC). Some
    components check their CA's name as a SAN, its expiry months ahead, or can only read a
    PKCS#1 RSA key: hence the options."""
    directory.mkdir(parents=True, exist_ok=True)
    *_, pair = _issue(
        directory,
        stem,
        _name(common_name),
        issuer=None,
        is_ca=True,
        server_names=server_names,
        validity=validity,
        rsa_key=rsa_key,
    )
    return pair


def issue_serving_pair(
    directory: Path,
    stem: str,
    ca: KeyPair,
    server_names: tuple[str, ...],
    *,
    validity: dt.timedelta = _VALIDITY,
) -> KeyPair:
    """A serving certificate (for server and client auth) signed by `ca`, valid for the names
    and IP addresses in `server_names`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"{ca.key} is not a key written by this module")
    directory.mkdir(parents=True, exist_ok=True)
    *_, pair = _issue(
        directory,
        stem,
        _name(server_names[0]),
        issuer=(ca_cert, ca_key),
        server_names=server_names,
        usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        validity=validity,
    )
    return pair
