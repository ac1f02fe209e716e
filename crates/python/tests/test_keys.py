"""Keys and addresses: seeds, PEM (PKCS#8, interoperable with OpenSSL), key files,
and every bad input refused with KeyFormatError."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import the_block as tb


def test_generate_keypair_gives_a_key_and_its_address() -> None:
    sk, addr = tb.generate_keypair()
    assert sk.address == addr
    assert len(bytes(addr)) == 32
    assert str(addr).startswith("tb1") and len(str(addr)) == 75
    assert tb.Address(str(addr)) == addr
    assert tb.Address(addr.hex()) == addr
    assert tb.is_valid_address(addr) and tb.is_valid_address(str(addr))
    other, _ = tb.generate_keypair()
    assert other != sk and other.address != addr


def test_seed_round_trips() -> None:
    sk = tb.SecretKey.generate()
    assert tb.SecretKey.from_seed(sk.seed()) == sk
    assert tb.SecretKey.from_seed_hex(sk.seed_hex()) == sk
    assert "address" in repr(sk) and sk.seed_hex() not in repr(sk)


def test_dev_keys_are_the_nodes() -> None:
    # The same derivation as the node's `SecretKey::dev` (pinned by the devnet tests,
    # which read the files the node writes).
    assert tb.SecretKey.dev("devnet-alice") == tb.SecretKey.dev("devnet-alice")
    assert tb.SecretKey.dev("devnet-alice") != tb.SecretKey.dev("devnet-bob")


def test_pem_round_trips() -> None:
    sk = tb.SecretKey.generate()
    pem = sk.to_pem()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert tb.SecretKey.from_pem(pem) == sk


def test_key_file_hex_and_pem(tmp_path: Path) -> None:
    sk = tb.SecretKey.generate()
    (tmp_path / "a.key").write_text(sk.seed_hex() + "\n")
    (tmp_path / "b.pem").write_text(sk.to_pem())
    assert tb.SecretKey.from_file(tmp_path / "a.key") == sk
    assert tb.SecretKey.from_file(str(tmp_path / "b.pem")) == sk
    (tmp_path / "big").write_bytes(b"0" * 10_000)
    with pytest.raises(tb.KeyFormatError, match="not a key file"):
        tb.SecretKey.from_file(tmp_path / "big")
    with pytest.raises(tb.KeyFormatError):
        tb.SecretKey.from_file(tmp_path / "missing.key")


needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is not installed"
)


@needs_openssl
def test_openssl_made_key_is_read(tmp_path: Path) -> None:
    key = tmp_path / "ossl.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True
    )
    sk = tb.SecretKey.from_pem(key.read_text())
    # OpenSSL's public key (the last 32 bytes of its DER SubjectPublicKeyInfo) is the
    # address.
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    assert der[-32:] == bytes(sk.address)
    # And OpenSSL reads ours: the same public key back.
    ours = tmp_path / "ours.pem"
    ours.write_text(sk.to_pem())
    der2 = subprocess.run(
        ["openssl", "pkey", "-in", str(ours), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    assert der2 == der


@needs_openssl
def test_a_key_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "ec.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            str(key),
        ],
        check=True,
    )
    with pytest.raises(tb.KeyFormatError, match="PKCS#8 Ed25519"):
        tb.SecretKey.from_pem(key.read_text())


@pytest.mark.parametrize(
    "call",
    [
        lambda: tb.SecretKey.from_seed(b"short"),
        lambda: tb.SecretKey.from_seed_hex("zz" * 32),
        lambda: tb.SecretKey.from_seed_hex("ab" * 31),
        lambda: tb.SecretKey.from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        lambda: tb.SecretKey.from_pem("x" * 5000),
        lambda: tb.Address("tb1" + "0" * 72),
        lambda: tb.Address("not an address"),
        lambda: tb.Address.from_bytes(b"\x00" * 31),
    ],
)
def test_bad_keys_raise_key_format_error(call: "object") -> None:
    with pytest.raises(tb.KeyFormatError):
        call()  # type: ignore[operator]


def test_a_checksum_typo_is_caught() -> None:
    a = str(tb.SecretKey.generate().address)
    typo = a[:10] + ("0" if a[10] != "0" else "1") + a[11:]
    with pytest.raises(tb.KeyFormatError, match="checksum"):
        tb.Address(typo)
