"""Where `packrat-lab serve` takes its management token from: the environment or a private file, never argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from packrat_lab.cli.serve_cmd import TOKEN_ENV, read_token


def test_token_from_the_environment() -> None:
    assert read_token(None, {TOKEN_ENV: "from-env"}) == "from-env"
    assert read_token(None, {}) is None  # the server then makes a random one
    assert read_token(None, {TOKEN_ENV: ""}) is None


def test_token_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  from-file\n")
    path.chmod(0o600)
    assert read_token(str(path), {TOKEN_ENV: "ignored"}) == "from-file"
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(ValueError, match=f"readable by others; run: chmod 600 {path}"):
            read_token(str(path))


def test_empty_or_missing_token_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="is empty"):
        read_token(str(path))
    with pytest.raises(FileNotFoundError):
        read_token(str(tmp_path / "nope"))
