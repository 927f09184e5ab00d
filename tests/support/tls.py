"""A test CA and certificates made with the machine's ``openssl``, in a folder of the test's.

`make_pki` writes a CA, a broker certificate for 127.0.0.1/localhost signed by it
(PEM, and a PKCS12 keystore for Kafka), a client certificate, and a second CA that
signed nothing fintank talks to (for "untrusted certificate" checks).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

KEYSTORE_PASSWORD = "keystore-secret"


@dataclass(frozen=True)
class Pki:
    """Paths of what `make_pki` made."""

    ca: Path  # the CA certificate (PEM): FINTANK_KAFKA_SSL_CAFILE
    other_ca: Path  # a CA that signed nothing: a client trusting it must refuse the broker
    broker_cert: Path
    broker_key: Path
    keystore: Path  # PKCS12 of the broker's key and certificate chain, KEYSTORE_PASSWORD
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=fintank test {name}", "-keyout", key, "-out", cert,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    return cert, key


def _signed(folder: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    cert, key, csr = folder / f"{name}.pem", folder / f"{name}-key.pem", folder / f"{name}.csr"
    extfile = folder / f"{name}.ext"
    extfile.write_text(ext)
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", key, "-out", csr, cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-days", "2", "-out", cert, "-extfile", extfile, cwd=folder,
    )  # fmt: skip
    return cert, key


def make_pki(folder: Path) -> Pki:
    """A CA, a broker certificate (SAN 127.0.0.1 and localhost) and a client one, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "ca")
    other, _ = _ca(folder, "other-ca")
    broker = _signed(
        folder,
        "broker",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    client = _signed(folder, "client", ca, "extendedKeyUsage=clientAuth\n")
    keystore = folder / "broker.p12"
    _openssl(
        "pkcs12", "-export", "-in", broker[0], "-inkey", broker[1], "-certfile", ca[0],
        "-name", "broker", "-out", keystore, "-passout", f"pass:{KEYSTORE_PASSWORD}",
        cwd=folder,
    )  # fmt: skip
    return Pki(ca[0], other, broker[0], broker[1], keystore, client[0], client[1])
