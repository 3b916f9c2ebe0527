"""The reader's language (depthlab.i18n): resolution from arguments and the environment, and that a
language applies only inside its block."""

from __future__ import annotations

import pytest

from depthlab.errors import UsageError
from depthlab.i18n import _, current, language, resolve_language


@pytest.mark.parametrize(
    "requested,expected", [("en", "en"), ("ja", "ja"), ("ko_KR.UTF-8", "ko"), ("JA", "ja"), ("ja-JP", "ja")]
)
def test_an_explicit_language_is_read_by_its_code(requested: str, expected: str) -> None:
    assert resolve_language(requested) == expected


def test_an_unknown_language_names_the_choices() -> None:
    with pytest.raises(UsageError, match=r"unknown language 'fr'; choose from: en, ja, ko"):
        resolve_language("fr")


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"LANGUAGE": "ko:en"}, "ko"),
        ({"LANGUAGE": "fr:ja"}, "ja"),
        ({"LC_ALL": "ja_JP.UTF-8", "LANG": "ko_KR.UTF-8"}, "ja"),  # LC_ALL before LANG, as gettext reads them
        ({"LANG": "ko_KR.UTF-8"}, "ko"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_environment_decides_when_none_is_asked_for(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert resolve_language(None) == expected


def test_a_language_holds_inside_its_block_only() -> None:
    assert current() == "en"
    with language("ja") as code:
        assert code == "ja" and current() == "ja"
        with language("ko"):
            assert current() == "ko"
        assert current() == "ja"
    assert current() == "en"
    assert _("no such message in any catalogue") == "no such message in any catalogue"
