from pathlib import Path

import pytest

from video_emotions.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("VE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_run_embedded_on_one_machine() -> None:
    settings = Settings()
    assert settings.port == 8003 and settings.host == "127.0.0.1"
    assert settings.resolved_database_url == "sqlite:///data/video_emotions.db"
    assert settings.resolved_storage_url.startswith("file://") and settings.resolved_storage_url.endswith(
        "/data/storage"
    )
    assert settings.bucket == "interviews" and settings.video_filename == "raw.mp4"
    assert settings.interval == 1.0 and settings.default_model == "default"


def test_seed_ini_keys_are_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "videoConfig.ini").write_text(
        "[GENERAL]\nFilename = interview.mp4\n[VIDEOEMOTION]\nInterval = 2.5\n"
        "[SUPABASE]\nInputBucket = videos\nUrl = https://example.supabase.co\n"
    )
    settings = Settings()
    assert settings.video_filename == "interview.mp4"
    assert settings.interval == 2.5
    assert settings.bucket == "videos"
    assert settings.supabase_url == "https://example.supabase.co"
    monkeypatch.setenv("VE_INTERVAL", "0.5")
    assert Settings().interval == 0.5


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VE_PORT=9100\nVE_CROP_MARGIN=0.3\n")
    settings = Settings()
    assert settings.port == 9100 and settings.crop_margin == 0.3


def test_bad_values_are_refused_with_the_setting_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VE_INTERVAL", "-1")
    with pytest.raises(ValueError, match="interval"):
        Settings()
