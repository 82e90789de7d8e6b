import pytest

from zray.config import ConfigError, load_config


def test_defaults():
    cfg = load_config(None)
    assert (cfg.video.width, cfg.video.height, cfg.video.fps, cfg.video.preset) == (1920, 1072, 24, "final")
    assert cfg.audio.music_level == 0.08 and cfg.profile == "auto" and cfg.output == "outputs/"
    assert cfg.actors.image.num_cpus < 1  # actors that wait on a model must not starve a 2-core box


def test_file_then_environment_then_flags(tmp_path, monkeypatch):
    path = tmp_path / "zray.toml"
    path.write_text(
        'output = "s3://b/x"\n[video]\nwidth = 1280\nheight = 720\npreset = "fast"\n[voices]\nen = "en-gb"\n'
    )
    monkeypatch.setenv("ZRAY_VIDEO__WIDTH", "640")
    monkeypatch.setenv("ZRAY_ENGINES__TTS__CA", "espeak")
    cfg = load_config(path, video__preset="final", output=None)
    assert cfg.output == "s3://b/x"  # a None flag does not override
    assert cfg.video.width == 640 and cfg.video.height == 720  # env beats file
    assert cfg.video.preset == "final"  # flag beats file
    assert cfg.voices == {"en": "en-gb"} and cfg.engines.tts == {"ca": "espeak"}


def test_errors_name_the_setting_and_its_source(tmp_path, monkeypatch):
    path = tmp_path / "zray.toml"
    path.write_text("[video]\nfps = 0\n")
    with pytest.raises(ConfigError, match=r"setting video.fps = 0 \(.*zray.toml\)"):
        load_config(path)
    path.write_text("[video]\nwidht = 1\n")
    with pytest.raises(ConfigError, match=r"video\.widht .*unknown setting"):
        load_config(path)
    path.write_text("[video\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    monkeypatch.setenv("ZRAY_VIDEO__HEIGHT", "1080")
    with pytest.raises(
        ConfigError, match=r"environment variable ZRAY_VIDEO__HEIGHT='1080': .*multiple of 16"
    ):
        load_config(None)


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "zray.toml"
    path.write_bytes(b'output = "caf\xe9"\n')
    with pytest.raises(
        ConfigError, match=r"zray.toml: the config file is not UTF-8 text \(byte 0xe9 on line 1\)"
    ):
        load_config(path)
    with pytest.raises(ConfigError, match="it is a folder, not a file"):
        load_config(tmp_path)


def test_a_table_and_one_of_its_values_in_the_environment_conflict(monkeypatch):
    monkeypatch.setenv("ZRAY_VIDEO", "1")
    monkeypatch.setenv("ZRAY_VIDEO__WIDTH", "1280")
    with pytest.raises(ConfigError, match="ZRAY_VIDEO and ZRAY_VIDEO__WIDTH conflict"):
        load_config(None)


def test_a_bad_flag_is_named_as_the_flag_with_its_value():
    with pytest.raises(ConfigError) as caught:
        load_config(None, flag_names={"video__preset": "--preset"}, video__preset="slow")
    assert str(caught.value).startswith("--preset 'slow': ")
    with pytest.raises(ConfigError, match=r"environment variable ZRAY_VIDEO__GOP='1'"):
        import os

        os.environ["ZRAY_VIDEO__GOP"] = "1"
        try:
            load_config(None)
        finally:
            del os.environ["ZRAY_VIDEO__GOP"]


# Values around every edge of the video rules; the config must take exactly those the encoder takes.
VIDEO_CANDIDATES = {
    "fps": [-24, 0, 1, 7, 23, 24, 25, 30, 50, 60, 64, 96, 120, 125, 240],
    "gop": [-1, 0, 1, 2, 3, 4, 48, 1000],
    "preset": ["fast", "final", "slow", "", "FINAL"],
    "width": [-16, 0, 16, 640, 1280, 1920, 3840],
    "height": [-16, 0, 16, 720, 1072, 2160],
}


@pytest.mark.parametrize("field", sorted(VIDEO_CANDIDATES))
def test_video_config_accepts_exactly_what_the_encoder_accepts(field, monkeypatch):
    from zray.media.video import VideoError, VideoSettings

    for value in VIDEO_CANDIDATES[field]:
        monkeypatch.setenv(f"ZRAY_VIDEO__{field.upper()}", str(value))
        try:
            VideoSettings(**{field: value})
        except VideoError as error:
            with pytest.raises(ConfigError) as caught:
                load_config(None)
            # The same sentence, naming the value and the fix, from the one rule both use.
            assert (
                str(caught.value)
                == f"environment variable ZRAY_VIDEO__{field.upper()}={str(value)!r}: {error}"
            )
        else:
            config = load_config(None)
            assert getattr(config.video, field) == value
            assert config.video.to_settings() == VideoSettings(**{field: value})


def test_a_bad_fps_or_gop_names_the_value_and_the_fix(tmp_path):
    path = tmp_path / "zray.toml"
    path.write_text("[video]\nfps = 7\n")
    with pytest.raises(
        ConfigError, match=r"video\.fps .*fps 7 does not divide 48000 .*use 24, 25, 30, 48, 50 or 60"
    ):
        load_config(path)
    for gop in (1, 2):
        path.write_text(f"[video]\ngop = {gop}\n")
        with pytest.raises(ConfigError, match=rf"video\.gop .*at least 3.*got {gop}"):
            load_config(path)


def test_image_models_still_need_sizes_in_multiples_of_16(monkeypatch):
    from zray.media.video import VideoSettings

    VideoSettings(height=1080)  # the encoder takes any even size
    monkeypatch.setenv("ZRAY_VIDEO__HEIGHT", "1080")
    with pytest.raises(ConfigError, match=r"height 1080 is not a multiple of 16.*try 1072"):
        load_config(None)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("target_lufs", "nan", "target_lufs must be a finite number"),
        ("target_lufs", "-60", "target_lufs -60 is outside -40..-5 LUFS; use -14"),
        ("target_lufs", "0", "target_lufs 0 is outside"),
        ("peak_dbfs", "0.5", "peak_dbfs 0.5 is outside -12..0 dBTP; use -1"),
        ("peak_dbfs", "-inf", "peak_dbfs must be a finite number"),
    ],
)
def test_loudness_settings_follow_the_mastering_rules(key, value, message, monkeypatch):
    from zray.media import levels

    monkeypatch.setenv(f"ZRAY_AUDIO__{key.upper()}", value)
    with pytest.raises(ConfigError, match=message):
        load_config(None)
    with pytest.raises(levels.AudioError, match=message):
        getattr(levels, f"check_{key}")(float(value))
