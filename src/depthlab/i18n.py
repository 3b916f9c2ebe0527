"""The reader's language: English, Japanese or Korean, through the standard ``gettext`` catalogues.

The catalogues live in the package (``depthlab/locale/<lang>/LC_MESSAGES/depthlab.po``, compiled to ``.mo``
by ``make locales``, which runs Babel: ``pybabel extract`` → ``update``, then writes the ``.mo`` with Babel's ``write_mo``). English is the
source language, so it needs no catalogue: an untranslated message is shown in English.

Library code marks what a reader sees with :func:`_` (``_("Does depth raise training error in plain
nets?")``, templates with named fields: ``_("{a} vs {b}").format(a=…, b=…)``) and :func:`N_` for strings
defined at import time and translated where they are shown. The language is not a global setting: a
renderer asks for one for the duration of its work with :func:`language` (a context variable, so two
reports built in two threads do not see each other's), and everything rendered inside follows it::

    with language("ja"):
        html = build_report(directory)

``resolve_language(None)`` picks the language from the environment as gettext does (``LANGUAGE``,
``LC_ALL``, ``LC_MESSAGES``, ``LANG``), falling back to English for anything but Japanese and Korean.
"""

from __future__ import annotations

import contextlib
import contextvars
import gettext
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from depthlab.errors import UsageError

__all__ = ["LANGUAGES", "DOMAIN", "LOCALE_DIR", "N_", "_", "current", "language", "resolve_language"]

LANGUAGES = ("en", "ja", "ko")
DOMAIN = "depthlab"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("depthlab_language", default="en")


def resolve_language(requested: str | None = None) -> str:
    """``requested`` (``en``, ``ja`` or ``ko``; a locale name such as ``ja_JP.UTF-8`` is read by its
    language), or, when ``None``, the first language the environment names that depthlab has (else
    ``en``). An explicit language depthlab does not have is a :class:`~depthlab.errors.UsageError`."""
    if requested is not None:
        code = requested.split(".")[0].split("_")[0].split("-")[0].lower()
        if code not in LANGUAGES:
            raise UsageError(f"unknown language {requested!r}; choose from: {', '.join(LANGUAGES)}")
        return code
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        for part in value.split(":"):  # LANGUAGE is a priority list: "ja:en"
            code = part.split(".")[0].split("_")[0].lower()
            if code in LANGUAGES:
                return code
        if value and var != "LANGUAGE":
            break  # the first of LC_ALL/LC_MESSAGES/LANG that is set decides, as for gettext
    return "en"


@cache
def _translations(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[lang], fallback=True)


def current() -> str:
    """The language of what is being rendered now (``en`` outside :func:`language`)."""
    return _current.get()


@contextlib.contextmanager
def language(lang: str | None) -> Iterator[str]:
    """Render in ``lang`` (resolved by :func:`resolve_language`) until the block ends; yields the code."""
    code = resolve_language(lang)
    token = _current.set(code)
    try:
        yield code
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """``message`` in the current language (itself when the catalogue lacks it)."""
    return _translations(_current.get()).gettext(message)


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for "mark, translate later"
    """Mark ``message`` for the catalogue without translating it (strings defined at import time)."""
    return message
