"""Signed bundles: who produced a bundle, and that no byte of it changed since.

A bundle is signed with the OpenSSF ``model-signing`` library (the ``sign`` extra), which
hashes every file of a folder and signs that list with an elliptic-curve private key
(P-256/384/521, PEM, as ``openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256``
writes it), offline. The signature is a Sigstore bundle (a DSSE envelope over an in-toto
statement) in ``bundle.sig``, beside the files it covers; nothing here is a scheme of our own.

What each check promises:

* the sha256 list in ``manifest.json`` finds accidents (a truncated copy, a flipped bit), not
  intent: whoever changes a file can rewrite its hash;
* the derived-file check (:mod:`delaydeploy.audit`) proves that every file follows from
  ``network.ddn`` and the test inputs, so a verdict on one is a verdict on all; it says nothing
  of where ``network.ddn`` came from;
* a signature checked against a public key you trust (``verify --trusted-key``) proves that
  the holder of the matching private key produced exactly these files. It does not prove that
  the network is any good, that the key was not stolen, or who holds it: that trust is yours
  to establish (compare the key's fingerprint with its owner's over another channel).

A key's fingerprint is the sha256 of its public key in PEM (SubjectPublicKeyInfo), the
identifier ``model-signing`` writes into the signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from delaydeploy.errors import DelayDeployError, SignatureError

SIGNATURE_FILE = "bundle.sig"
SIGN_MISSING = ("signing and checking signatures need the sign extra: pip install 'delaydeploy[sign]' "
                "(model-signing and pyopenssl)")


def _require_model_signing() -> None:
    try:
        import model_signing  # noqa: F401
    except ImportError:
        raise DelayDeployError(SIGN_MISSING) from None


def _hashing_config():
    """Every file of the folder but the signature itself (git's files included)."""
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)


def key_fingerprint(key_file: str | os.PathLike, *, private: bool = False) -> str:
    """The fingerprint of the key in ``key_file`` (a PEM public key, or a private one's public half);
    raises naming the file if it holds no supported elliptic-curve key."""
    _require_model_signing()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = Path(key_file)
    if not path.is_file():
        raise DelayDeployError(f"{path}: no such key file")
    kind = "private" if private else "public"
    try:
        public = serialization.load_pem_private_key(path.read_bytes(), None).public_key() if private \
            else serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError) as error:
        raise DelayDeployError(f"{path}: not a PEM {kind} key without a password ({error})") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name not in ("secp256r1", "secp384r1",
                                                                                     "secp521r1"):
        raise DelayDeployError(f"{path}: a {type(public).__name__.lstrip('_')}; sign with an elliptic-curve key on "
                               "P-256, P-384 or P-521 (openssl genpkey -algorithm EC -pkeyopt "
                               "ec_paramgen_curve:P-256)")
    spki = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def sign_directory(folder: str | os.PathLike, private_key: str | os.PathLike) -> str:
    """Sign every file of ``folder`` into ``folder/bundle.sig``; returns the key's fingerprint."""
    fingerprint = key_fingerprint(private_key, private=True)
    from model_signing import signing

    folder = Path(folder)
    signing.Config().set_hashing_config(_hashing_config()).use_elliptic_key_signer(
        private_key=Path(private_key)).sign(folder, folder / SIGNATURE_FILE)
    return fingerprint


def signer_fingerprint(folder: str | os.PathLike) -> str | None:
    """The fingerprint of the key that ``folder/bundle.sig`` says signed it (None: unsigned).
    Read as JSON only; what it claims is proven by :func:`check_signature` alone."""
    path = Path(folder) / SIGNATURE_FILE
    if not path.exists():
        return None
    try:
        hint = json.loads(path.read_text())["verificationMaterial"]["publicKey"]["hint"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise SignatureError(f"{path}: not a model-signing signature ({type(error).__name__}: {error})") from None
    if not (isinstance(hint, str) and re.fullmatch(r"[0-9a-f]{64}", hint)):
        raise SignatureError(f"{path}: names no key fingerprint")
    return hint


def check_signature(folder: str | os.PathLike, trusted_key: str | os.PathLike) -> str:
    """Check that ``folder`` is signed by ``trusted_key`` (a PEM public key) and unchanged since;
    returns the key's fingerprint. Raises :class:`SignatureError` naming the key or the files."""
    folder = Path(folder)
    fingerprint = key_fingerprint(trusted_key)
    claimed = signer_fingerprint(folder)
    if claimed is None:
        raise SignatureError(f"{folder}: unsigned (no {SIGNATURE_FILE}); --trusted-key checks a signed bundle "
                             "(export --sign KEY.pem)")
    if claimed != fingerprint:
        raise SignatureError(f"{folder}: signed by key {claimed}, not by the trusted key {trusted_key} "
                             f"({fingerprint})")
    from model_signing import verifying

    try:
        verifying.Config().set_hashing_config(_hashing_config()).use_elliptic_key_verifier(
            public_key=Path(trusted_key)).verify(folder, folder / SIGNATURE_FILE)
    except ValueError as error:
        changed = _changed_files(folder) if str(error).startswith("Signature mismatch") else []
        if changed:
            raise SignatureError(f"{folder}: changed since it was signed: {', '.join(changed)}") from None
        raise SignatureError(f"{folder / SIGNATURE_FILE}: does not verify with {trusted_key}: "
                             f"{_first_line(error)}") from None
    except Exception as error:  # noqa: BLE001 -- a forged signature file can make the parser raise anything
        raise SignatureError(f"{folder / SIGNATURE_FILE}: unreadable signature ({type(error).__name__}: "
                             f"{_first_line(error)})") from None
    return fingerprint


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _changed_files(folder: Path) -> list[str]:
    """The files of ``folder`` that differ from the list a signature holds, each with how.

    Called only after ``model-signing`` has found the signature itself valid and the files
    not matching it (it reports that as one message, not by file), so the list it reads from
    the signature is the signer's own.
    """
    import base64

    envelope = json.loads((folder / SIGNATURE_FILE).read_text())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    signed = {item["name"]: item["digest"] for item in statement["predicate"]["resources"]}
    present = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
               for path in folder.iterdir() if path.name != SIGNATURE_FILE and path.is_file()}
    present.update({path.name: "a folder" for path in folder.iterdir() if path.is_dir()})
    return ([f"{name} (added)" for name in sorted(set(present) - set(signed))]
            + [f"{name} (removed)" for name in sorted(set(signed) - set(present))]
            + [name for name in sorted(set(signed) & set(present)) if signed[name] != present[name]])
