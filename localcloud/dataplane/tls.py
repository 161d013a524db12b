"""The local certificate the load balancer serves its HTTPS listeners with.

AWS serves an HTTPS listener with the ACM certificate the listener names; the local cloud has no
CA that a browser trusts, so every HTTPS listener is served with one self-signed certificate for
``localhost``, ``127.0.0.1`` and the names given (e.g. the load balancers' DNS names). Clients
trust it by its file (``curl --cacert cert.pem``), or skip verification (``curl -k``).

That certificate is also the local cloud's CA (``<state dir>/tls/lb-cert.pem``): it issues the
certificates the local databases serve TLS with (:func:`issue`), for their RDS endpoint names, so a
task that trusts that one file connects with ``sslmode=verify-full`` as it would against the RDS CA
bundle on AWS.

The TLS versions follow the listener's security policy the way ALB's do: policies named
``...TLS13-1-3...`` accept TLS 1.3 only, every other policy TLS 1.2 and 1.3 (this machine's
OpenSSL offers nothing older anyway).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

CERT_NAME = "lb-cert.pem"
KEY_NAME = "lb-key.pem"
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
VALID_DAYS = 825  # the most that Apple's TLS clients accept for a server certificate
RENEW_BEFORE = datetime.timedelta(days=7)


def self_signed(directory: str | os.PathLike, hosts: Iterable[str] = ()) -> tuple[str, str]:
    """(certfile, keyfile) in ``directory``: a self-signed certificate for localhost, 127.0.0.1
    and ``hosts``. An existing one is kept while it covers the same names and is not about to
    expire, so a client that trusted it once keeps trusting it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = list(dict.fromkeys([*DEFAULT_HOSTS, *hosts]))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / CERT_NAME, directory / KEY_NAME
    if certfile.exists() and keyfile.exists() and _still_good(certfile, names):
        return str(certfile), str(keyfile)

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localcloud load balancer")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names = _alt_names(names)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key_pem)
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(certfile), str(keyfile)


def _still_good(certfile: Path, names: list[str]) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
        covered = {
            str(name.value) for name in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        }
    except (ValueError, x509.ExtensionNotFound, OSError):
        return False
    expires = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return expires > RENEW_BEFORE and set(names) <= covered


def server_context(certfile: str, keyfile: str, ssl_policy: str | None = None) -> ssl.SSLContext:
    """A server-side TLS context for a listener with this security policy."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ssl_policy and "TLS13-1-3" in ssl_policy:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _alt_names(names: Iterable[str]) -> list:
    """The subjectAltName entries of ``names``: an IP address entry where the name is one, else a DNS name."""
    from cryptography import x509

    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    return alt_names


def issue(ca_certfile: str, ca_keyfile: str, hosts: Iterable[str], days: int = VALID_DAYS) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a server certificate for ``hosts``, issued by the local cloud's CA
    (the load balancer's certificate of :func:`self_signed`, a CA with a path length of 0): a client that
    trusts that one file verifies it, hostname included (libpq's ``sslmode=verify-full``), as RDS's
    server certificates verify against the RDS CA bundle."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(Path(ca_certfile).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca_keyfile).read_bytes(), password=None)
    names = list(dict.fromkeys(hosts))
    alt_names = _alt_names(names)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
