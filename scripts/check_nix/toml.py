"""JSON data to TOML the way pkgs.formats.toml renders deskd settings (tables, arrays of
tables, inline tables inside arrays), checked by reading it back with tomllib."""

import json
import tomllib
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _table(path: list[str], d: dict[str, Any], out: list[str]) -> None:
    nested = {k for k, v in d.items() if isinstance(v, dict) or _is_table_array(v)}
    for k, v in d.items():
        if k not in nested:
            out.append(f"{json.dumps(k)} = {_value(v)}")
    for k in nested:
        v = d[k]
        sub = path + [k]
        header = ".".join(json.dumps(p) for p in sub)
        if isinstance(v, dict):
            out.append(f"\n[{header}]")
            _table(sub, v, out)
        else:
            for item in v:
                out.append(f"\n[[{header}]]")
                _table(sub, item, out)


def dumps(data: dict[str, Any]) -> str:
    """TOML text for `data`; raises ValueError if it does not read back as `data`."""
    out: list[str] = []
    _table([], data, out)
    text = "\n".join(out) + "\n"
    if tomllib.loads(text) != data:
        raise ValueError("the rendered TOML does not read back as the same data")
    return text
