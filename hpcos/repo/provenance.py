"""The run-signing key and the signatures that tell a run the harness recorded from a file someone handed in.

The harness signs every nightly run it records into the store with HMAC-SHA256 under a key that lives
in the store (``StoreLayout.run_signing_key``), readable by the store's owner only: the same account that runs
the harness, ``record-run`` and the gated promotion.  Whoever can edit a results file, or write one
from scratch, cannot produce a signature the gate accepts without reading that key; a record in the
store edited by hand stops verifying too, because the signature covers every field the gate reads.

The key is created on first use: 32 random bytes, written to a private temporary file and linked
into place, so two runs starting at once end up with the same key and nobody ever reads half a key.
A key file that group or others may read is refused (it no longer proves anything): ``chmod 600``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

from hpcos.core.errors import UserError

KEY_BYTES = 32


class KeyProblem(UserError):
    """The run-signing key cannot be read or is not private."""


def _read(path: Path) -> bytes:
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyProblem(
            f"{path}: the run-signing key is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"signatures made with it prove nothing: `chmod 600 {path}`, then rerun the nightly tests"
        )
    key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(key) < KEY_BYTES:
        raise KeyProblem(f"{path}: the run-signing key is shorter than {KEY_BYTES} bytes")
    return key


def signing_key(path: Path, create: bool = False) -> bytes:
    """The key; with ``create``, made on first use (the harness creates it, readers never do)."""
    try:
        return _read(path)
    except FileNotFoundError:
        if not create:
            raise KeyProblem(
                f"{path}: no run-signing key yet: the harness creates it with the first run it records "
                f"(`hpcos test` with HPCOS_TESTING_SNAPSHOT set)"
            ) from None
    except PermissionError:
        raise KeyProblem(
            f"{path}: cannot read the run-signing key: only the store's owner can "
            f"(run this as the user that owns {path.parent.parent})"
        ) from None
    except ValueError:
        raise KeyProblem(f"{path}: the run-signing key is not hex text") from None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(KEY_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another run made meanwhile
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def sign(key: bytes, payload: dict) -> str:
    return hmac.new(key, canonical(payload), hashlib.sha256).hexdigest()


def verify(key: bytes, payload: dict, signature: str) -> bool:
    return bool(signature) and hmac.compare_digest(sign(key, payload), signature)


def canonical(payload: dict) -> bytes:
    """One byte string per payload, whatever the order its keys were written in."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )
