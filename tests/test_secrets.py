"""The scrubber masks every token the environment holds and every credential inside a URL, whole."""

from __future__ import annotations

from alops.core.secrets import MASK, redact_url, scrub


def test_tokens_are_masked_whole_even_when_one_contains_another(monkeypatch):
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-abcdef123456")
    monkeypatch.setenv("CI_JOB_TOKEN", "abcdef")  # a shorter secret inside the longer one
    text = scrub("push with glpat-abcdef123456 and job abcdef failed")
    assert text == f"push with {MASK} and job {MASK} failed"
    assert "123456" not in text  # the longer token was masked first, not cut around the shorter


def test_url_credentials_are_masked_and_the_rest_kept():
    assert redact_url("https://user:s3cret@mlflow.example.com/api") == f"https://{MASK}@mlflow.example.com/api"
    assert redact_url("git fetch https://oauth2:tok@gitlab.example.com/g/p.git main") == \
        f"git fetch https://{MASK}@gitlab.example.com/g/p.git main"
    assert redact_url("mail dev@example.com about s3://bucket/path") == "mail dev@example.com about s3://bucket/path"


def test_short_values_are_not_secrets(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ab")  # too short to mask without wrecking the text
    assert scrub("a label named ab") == "a label named ab"
