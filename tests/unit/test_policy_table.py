"""The README's authorization table is the policy table, word for word."""

from __future__ import annotations

from pathlib import Path

from services.gateway.policy import policy_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_shows_the_policy_table() -> None:
    assert policy_table() in README.read_text(), (
        "README's authorization table is stale: paste services.gateway.policy.policy_table()"
    )
