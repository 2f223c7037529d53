"""YAML files a user gives (training configs), read so that hostile ones are cheap to refuse.

A config is a small mapping of settings: a file over :data:`MAX_CONFIG_BYTES`, text that is not
UTF-8, YAML that is not valid, a key given twice, or YAML with more than :data:`MAX_ALIASES`
aliases (the "billion laughs" of YAML: a few hundred bytes that expand to gigabytes) is
refused in one line naming the file, before anything is built from it. Values shown in
messages are cut short (:func:`shown`), so a message never expands what it quotes.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any

import yaml

from keras_unet.errors import InputError, InputNotFoundError

MAX_CONFIG_BYTES = 2**20
"""Largest config file read: a config is a few hundred bytes of settings."""

MAX_ALIASES = 16
"""Most YAML aliases (``*name``) a config may use; configs need none."""

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 2, 4, 4
_SHORT.maxstring = _SHORT.maxother = 60


def shown(value: Any) -> str:
    """``repr(value)`` cut short: what a message quotes of a value it refuses.

    Example:
        >>> shown(["a", "b", "c", "d", "e", "f"]), shown("x" * 100)[-5:]
        ("['a', 'b', 'c', 'd', ...]", "xx...'")
    """
    return _SHORT.repr(value)


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that counts the aliases it resolves and refuses a key given twice
    (PyYAML keeps the last silently: ``epochs: 3`` then ``epochs: 4`` would train 4)."""

    aliases = 0

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.YAMLError(f"key {key!r} is given twice (again on line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (a config needs none)")
        return super().compose_node(parent, index)


def read_yaml(path: str | os.PathLike, option: str = "config file") -> Any:
    """The YAML document of a small, UTF-8, alias-free file, or one line saying why not.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``option`` and the file, for a file too large, not UTF-8 text, not
            valid YAML, or with too many aliases.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "bomb.yaml"
        >>> _ = path.write_text("a: &a [x, x]\\n" + "".join(
        ...     f"{c}: &{c} [*{p}, *{p}]\\n" for p, c in zip("abcdefghi", "bcdefghij")))
        >>> read_yaml(path)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: config file '...bomb.yaml' is not valid YAML: more than 16 ...
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{option} {str(path)!r} does not exist.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InputError(f"{option} {str(path)!r} holds {path.stat().st_size} bytes; a config "
                         f"is at most {MAX_CONFIG_BYTES} bytes of settings.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{option} {str(path)!r} is not UTF-8 text (byte {error.start}).") \
            from None
    try:
        return yaml.load(text, Loader=_LimitedLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())[:200]
        raise InputError(f"{option} {str(path)!r} is not valid YAML: {reason}") from None
