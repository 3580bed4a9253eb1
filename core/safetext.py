"""Text that can always be written: to JSON, to SQLite, to a log, to a UTF-8 file.

On Linux a file name that is not valid UTF-8 (`caf\\xe9.png` written by an old Windows
tool or a Latin-1 camera) reaches Python as a str with lone surrogates
(`os.fsdecode(b"caf\\xe9.png") == "caf\\udce9.png"`). Such a str can be used to open the
file, but any UTF-8 encoder refuses it: SQLite drops the whole batch of log lines it was
in, `json.dump` to a UTF-8 file raises half way through an import, a job's final status
cannot be stored. Everything that leaves the process as text goes through `safe_text`
once, at these boundaries (core.store, core.cli, the data importer's JSON files):

- an undecodable byte (surrogate-escaped) is shown as `\\xe9` -> `caf\\xe9.png`, readable
  and telling the user which byte it was;
- any other lone surrogate becomes `\\udXXX`.

The file on disk keeps its real name; only its description is escaped.
"""
from __future__ import annotations

import json
from typing import Any


def safe_text(text: Any) -> str:
    """`text` as a str that encodes as UTF-8 (see the module docstring)."""
    s = text if isinstance(text, str) else str(text)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        pass
    out = []
    for ch in s:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of one byte >= 0x80
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def json_safe(value: Any) -> Any:
    """A copy of a JSON-like value whose every str (keys too) is `safe_text`."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(k) if isinstance(k, str) else k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps that never fails on text: unknown objects become their (safe) str."""
    kwargs.setdefault("default", lambda o: safe_text(str(o)))
    return json.dumps(json_safe(value), **kwargs)
