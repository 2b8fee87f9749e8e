# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A throwaway CA and one server certificate for every lab address, made at start."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclasses.dataclass
class LabCertificates:
    ca_path: str
    cert_path: str
    key_path: str
    channel_binding: bytes  # tls-server-end-point application data for NTLM over HTTPS


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'secure_endpoint.tetra lab'),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: str, addresses: list[str], names: list[str]) -> LabCertificates:
    """Write ca.pem, server.pem and server.key into folder."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name('Tetra Lab Root CA')).issuer_name(_name('Tetra Lab Root CA'))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    alt_names += [x509.DNSName(n.replace('_', '-')) for n in names]
    cert = (x509.CertificateBuilder().subject_name(_name('tetra-lab-endpoints')).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = LabCertificates(os.path.join(folder, 'ca.pem'), os.path.join(folder, 'server.pem'), os.path.join(folder, 'server.key'),
                            b'tls-server-end-point:' + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
    _write(paths.ca_path, ca.public_bytes(serialization.Encoding.PEM))
    _write(paths.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write(paths.key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return paths


def _write(path: str, data: bytes) -> None:
    with open(path, 'wb') as handle:
        handle.write(data)
