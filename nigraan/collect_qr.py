"""ODK Collect settings QR codes, in the format Collect scans and ODK Central prints.

The payload is the settings JSON, zlib-deflated, then base64 (Collect's
`QRCodeDecoder`; Central's `collect-qr`). With an app-user token in the server URL no
password is needed; a Digest account puts username and password in `general`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import zlib
from pathlib import Path
from typing import Any

import segno

from nigraan.private_files import write_private


def collect_settings(
    server_url: str,
    project_name: str,
    *,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """The settings Central puts in an app user's QR code (plus Digest credentials if given)."""
    general: dict[str, Any] = {
        "server_url": server_url,
        "form_update_mode": "match_exactly",
        "autosend": "wifi_and_cellular",
    }
    if username is not None:
        general["username"] = username
    if password is not None:
        general["password"] = password
    return {
        "general": general,
        "project": {"name": project_name},
        "admin": {"automatic_update": True},
    }


def encode_settings(settings: dict[str, Any]) -> str:
    """The QR payload: compact JSON, zlib-deflated, base64."""
    text = json.dumps(settings, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(zlib.compress(text.encode("utf-8"))).decode("ascii")


def decode_settings(payload: str) -> dict[str, Any]:
    """Inverse of encode_settings, as Collect reads a scanned code."""
    return json.loads(zlib.decompress(base64.b64decode(payload)).decode("utf-8"))


def write_qr(settings: dict[str, Any], png_path: str | os.PathLike) -> str:
    """Write the settings QR as a PNG readable only by its owner; return it drawn for a terminal.

    The code is a credential (it lets a tablet submit), so the file is created 0600.
    """
    code = segno.make(encode_settings(settings), error="m", micro=False)
    path = Path(png_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    code.save(png, kind="png", scale=6, border=4)
    write_private(path, png.getvalue())
    return terminal_text(code)


def terminal_text(code: segno.QRCode) -> str:
    """Two rows per character with half blocks, so the code fits an 80-column terminal.

    Light modules are drawn (as `qrencode -t UTF8` does), so the code scans on the usual
    light-on-dark terminal.
    """
    rows = list(code.matrix_iter(scale=1, border=2))
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))  # a light row below
    blocks = {(1, 1): " ", (0, 1): "▀", (1, 0): "▄", (0, 0): "█"}
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        lines.append("".join(blocks[(bool(a), bool(b))] for a, b in zip(top, bottom, strict=True)))
    return "\n".join(lines)
