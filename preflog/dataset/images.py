"""The images a build's rows reference, checked against their sha256 before anything is written.

Images travel by reference (``uri``, ``sha256``, ``media_type`` on a message), never as bytes on Kafka. A build
reads each distinct image once (fsspec: ``file://``, ``s3://`` with the storage options given, ...), in chunks
of :data:`CHUNK` bytes, so memory does not grow with an image's size, and compares its sha256:

* ``ok``: the bytes are those the producer hashed;
* ``mismatched``: the bytes changed since (or the reference is wrong): every row holding such an image is left
  out of every output, counted under :data:`MISMATCH` (a model must not train on another picture than the
  one judged);
* ``unreachable``: the image could not be read from here (missing, no permission, unknown protocol): counted,
  and its rows kept, since a trainer with other credentials may read it; the card says so.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from .messages import struct_fields

__all__ = ["CHUNK", "MISMATCH", "check_images", "image_lines", "sha256_of"]

#: how much of an image is read at a time
CHUNK = 1 << 20
#: why a row holding an image whose bytes do not match its sha256 is left out
MISMATCH = "an image's bytes do not match its sha256"

_COLUMNS = ("prompt_messages", "chosen_messages", "rejected_messages")


def sha256_of(uri: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """The sha256 of the bytes at ``uri`` read in chunks, or None when they cannot be read."""
    import fsspec

    digest = hashlib.sha256()
    try:
        with fsspec.open(uri, "rb", **(storage_options or {})) as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except (OSError, ValueError, ImportError):  # missing, refused, or a protocol fsspec has no driver for
        return None
    return digest.hexdigest()


def _images_of(relation: str) -> str:
    """The SQL of the distinct (uri, sha256) of every image on a message of ``relation``, with each row's ``rid``."""
    every = " || ".join(f"coalesce({c}, [])" for c in _COLUMNS)
    each = f"flatten(list_transform({every}, lambda m: coalesce(m.images, [])))"
    return f"SELECT __rid AS rid, unnest({each}, recursive := true) FROM {relation}"


def check_images(
    con: Any,
    chosen: str = "pairs",
    kept: str = "kept",
    storage_options: dict[str, Any] | None = None,
    also: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """Check every image of the ``kept`` rows of ``chosen``; leave out of ``kept`` the rows with a mismatched one.

    Returns what the manifest says (None when no kept row has an image or the messages cannot hold one):
    distinct images ``referenced``, ``ok``, ``mismatched``, ``unreachable``, and ``rows_left_out`` by reason.
    The rows of the relations ``also`` (more kept rows of ``chosen``: a per-subject build's) are checked too,
    each image still read once, and left out alike; what is returned counts ``kept``'s only.
    """
    described = {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {chosen}").fetchall()}
    if not all("images" in struct_fields(described.get(c, "")) for c in _COLUMNS):
        return None
    rids = " UNION ".join(f"SELECT rid FROM {k}" for k in (kept, *also))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE row_images AS
            SELECT i.rid, i.uri, i.sha256 FROM ({_images_of(chosen)}) i WHERE i.rid IN ({rids})"""
    )
    found = con.execute("SELECT DISTINCT uri, sha256 FROM row_images ORDER BY uri, sha256").fetchall()
    if not found:
        return None
    mine = f"SELECT DISTINCT uri, sha256 FROM row_images WHERE rid IN (SELECT rid FROM {kept})"
    counted = {(u, h) for u, h in con.execute(mine).fetchall()}
    read: dict[str, str | None] = {}  # each uri is read once, whatever hashes its rows claim
    status = []
    for uri, claimed in found:
        if uri not in read:
            read[uri] = sha256_of(uri, storage_options)
        actual = read[uri]
        status.append("unreachable" if actual is None else "ok" if actual == claimed else "mismatched")
    checks = pa.table({"uri": [u for u, _ in found], "sha256": [s for _, s in found], "status": status})
    con.register("image_checks_found", checks)
    con.execute("CREATE OR REPLACE TEMP TABLE image_checks AS SELECT * FROM image_checks_found")
    con.unregister("image_checks_found")
    bad = "SELECT DISTINCT rid FROM row_images JOIN image_checks USING (uri, sha256) WHERE status = 'mismatched'"
    left_out = {}
    for relation in (kept, *also):
        gone = f"{bad} AND rid IN (SELECT rid FROM {relation})"
        left_out[relation] = int(con.execute(f"SELECT count(*) FROM ({gone})").fetchall()[0][0])
        if left_out[relation]:
            con.execute(f"DELETE FROM {relation} WHERE rid IN ({bad})")
    dropped = left_out[kept]
    if not counted:
        return None
    mine_status = [st for (u, h), st in zip(found, status, strict=True) if (u, h) in counted]
    return {
        "referenced": len(counted),
        **{s: mine_status.count(s) for s in ("ok", "mismatched", "unreachable")},
        "rows_left_out": {MISMATCH: dropped} if dropped else {},
    }


def image_lines(manifest: dict[str, Any]) -> list[str]:
    """The card's lines on the images checked (none for a build without images)."""
    images = manifest.get("images")
    if not images:
        return []
    left = images["rows_left_out"].get(MISMATCH, 0)
    return [
        f"- images referenced (distinct, each read once and its sha256 checked): {images['referenced']}; "
        f"ok {images['ok']}; bytes not matching their sha256 {images['mismatched']} (their {left} rows left out: "
        f"{MISMATCH}); unreachable from the build {images['unreachable']} (their rows kept: check that the "
        "trainer can read them)"
    ]
