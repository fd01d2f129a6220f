use super::*;

/// Options as `gendr plan` wrote them into manifests before the request
/// was typed: the words must still load, and serialise back unchanged.
const TODAYS_OPTIONS: &str = r#"{
    "sr": {"model": "fast", "tile": 0, "overlap": 8, "provider": "auto", "precision": "auto",
           "device_id": 0, "streams": 0, "threads": 0, "batch": 0, "max_frames_in_flight": 4,
           "trt_cache": null},
    "codec": "x265", "crf": 18, "preset": "medium", "pix_fmt": "yuv420p10", "audio": "aac",
    "deinterlace": "frame", "scale": null, "width": 1280, "height": null,
    "subtitles": "drop", "chapters": "keep"
}"#;

/// Options as a manifest of today holds them, for the engine's tests.
pub(crate) fn options() -> UpscaleOptions {
    serde_json::from_str(TODAYS_OPTIONS).unwrap()
}

#[test]
fn todays_manifest_options_load_as_typed_values_and_write_back_the_same_words() {
    let options = options();
    assert_eq!(options.codec, Some(Codec::X265));
    assert_eq!(options.pix_fmt, PixFmt::Yuv420p10);
    assert_eq!(options.audio, Audio::Aac);
    assert_eq!(options.deinterlace, Deinterlace::Frame);
    assert_eq!(options.subtitles, KeepOrDrop::Drop);
    assert_eq!(options.chapters, KeepOrDrop::Keep);
    assert_eq!(options.sr.provider, Provider::Auto);
    let written = serde_json::to_value(&options).unwrap();
    let before: serde_json::Value = serde_json::from_str(TODAYS_OPTIONS).unwrap();
    assert_eq!(written, before);
}

#[test]
fn a_provider_spelled_as_the_core_accepts_it_loads_and_is_written_in_its_own_word() {
    for (word, provider) in [
        ("CPU", Provider::Cpu),
        ("trt", Provider::TensorRt),
        ("OpenVINO", Provider::OpenVino),
    ] {
        let json =
            TODAYS_OPTIONS.replace(r#""provider": "auto""#, &format!(r#""provider": "{word}""#));
        let options: UpscaleOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(options.sr.provider, provider, "{word}");
        let written = serde_json::to_value(&options.sr).unwrap();
        assert_eq!(written["provider"], provider.to_string());
    }
}

#[test]
fn an_unknown_word_in_a_manifest_is_refused_naming_it() {
    let json = TODAYS_OPTIONS.replace(r#""pix_fmt": "yuv420p10""#, r#""pix_fmt": "rgb24""#);
    let text = serde_json::from_str::<UpscaleOptions>(&json)
        .unwrap_err()
        .to_string();
    assert!(text.contains("rgb24"), "{text}");
    let json = TODAYS_OPTIONS.replace(r#""provider": "auto""#, r#""provider": "tpu""#);
    let text = serde_json::from_str::<UpscaleOptions>(&json)
        .unwrap_err()
        .to_string();
    assert!(text.contains("unknown provider \"tpu\""), "{text}");
}

#[test]
fn every_listed_word_parses_to_the_value_that_names_itself_so() {
    fn round_trip<T: std::str::FromStr<Err = String> + std::fmt::Display>(names: &[&str]) {
        for word in names {
            let value: T = word.parse().unwrap();
            assert_eq!(value.to_string(), *word);
        }
    }
    round_trip::<PixFmt>(PixFmt::NAMES);
    round_trip::<Audio>(Audio::NAMES);
    round_trip::<KeepOrDrop>(KeepOrDrop::NAMES);
    round_trip::<Container>(Container::NAMES);
    round_trip::<Codec>(Codec::NAMES);
    round_trip::<Deinterlace>(Deinterlace::NAMES);
    assert_eq!(PixFmt::NAMES, ["auto", "yuv420p", "yuv420p10", "keep"]);
}

#[test]
fn an_unknown_word_is_refused_with_the_words_that_are_known() {
    let text = "ogg".parse::<Container>().unwrap_err();
    assert_eq!(text, r#""ogg" is not one of mp4, mkv, mov"#);
    // Words are exact, as the command line takes them.
    assert!("MKV".parse::<Container>().is_err());
}

#[test]
fn the_container_comes_from_the_extension_in_any_case_and_only_for_those_gendr_writes() {
    assert_eq!(Container::of(Path::new("a/b.MKV")), Some(Container::Mkv));
    assert_eq!(Container::of(Path::new("film.mov")), Some(Container::Mov));
    assert_eq!(Container::of(Path::new("film.mp4")), Some(Container::Mp4));
    assert_eq!(Container::of(Path::new("film.avi")), None);
    assert_eq!(Container::of(Path::new("film")), None);
}

#[test]
fn check_values_names_the_flag_of_a_value_out_of_range() {
    let mut options = options();
    options.sr.tile = 100_000;
    let text = options.check_values().unwrap_err().to_string();
    assert!(
        text.starts_with("--tile 100000 is out of range ("),
        "{text}"
    );
    let mut options = self::options();
    options.crf = 99;
    let text = options.check_values().unwrap_err().to_string();
    assert!(text.starts_with("--crf 99 is out of range"), "{text}");
    let mut options = self::options();
    options.preset = "ludicrous".into();
    let text = options.check_values().unwrap_err().to_string();
    assert!(
        text.contains(r#"--preset "ludicrous" is not one of ultrafast"#),
        "{text}"
    );
}

#[test]
fn check_values_takes_options_in_range_with_a_model_that_exists() {
    let mut options = options();
    options.sr.model = gendr_test_support::model("conv_x2.onnx");
    options.check_values().unwrap();
    options.sr.model = "/nonexistent/model.onnx".into();
    assert!(options.check_values().is_err());
}

#[test]
fn the_upscaler_config_carries_every_option_and_the_default_engine_cache() {
    let mut sr = options().sr;
    (sr.tile, sr.overlap, sr.streams, sr.batch, sr.threads) = (96, 12, 3, 2, 5);
    sr.provider = Provider::Cuda;
    sr.device_id = 1;
    let config = sr.upscaler_config();
    assert_eq!((config.tile_size, config.tile_overlap), (96, 12));
    assert_eq!((config.streams, config.batch_size), (3, 2));
    assert_eq!(config.engine.provider, Provider::Cuda);
    assert_eq!((config.engine.device_id, config.engine.threads), (1, 5));
    let defaults = gendr::upscaler::UpscalerConfig::default();
    assert_eq!(config.engine.trt_cache, defaults.engine.trt_cache);
    sr.trt_cache = Some("/tmp/engines".into());
    assert_eq!(
        sr.upscaler_config().engine.trt_cache,
        Some(PathBuf::from("/tmp/engines"))
    );
}

#[test]
fn segment_seconds_are_a_finite_number_of_at_least_a_tenth() {
    assert_eq!(positive_seconds("0.1"), Ok(0.1));
    assert_eq!(positive_seconds("60"), Ok(60.0));
    for bad in ["0.05", "0", "-5", "NaN", "inf", "a minute", ""] {
        assert!(positive_seconds(bad).is_err(), "{bad}");
    }
}
