//! The OpenVINO provider against the real runtime (`make openvino-runtime`)
//! and ONNX Runtime as the reference, on the small models in tests/data and
//! the committed default preset.

use std::path::PathBuf;

use gendr::engine::{ComputePrecision, Engine, EngineOptions, Provider};
use gendr::Error;

mod common;
use common::{cpu, data};

fn openvino(precision: ComputePrecision) -> EngineOptions {
    EngineOptions {
        provider: Provider::OpenVino,
        precision,
        ..cpu()
    }
}

/// A deterministic busy input in [0, 1].
fn input(len: usize) -> Vec<f32> {
    let mut state = 11u32;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

/// PSNR of `a` against `b` on [0, 1] values, and the largest difference.
fn psnr(a: &[f32], b: &[f32]) -> (f64, f32) {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    (10.0 * (1.0 / mse.max(1e-20)).log10(), max)
}

fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/waifu2x-upconv7-photo-x2.onnx")
}

#[test]
fn fp32_matches_onnx_runtime_and_bf16_stays_within_its_bound() {
    let path = default_model();
    let (b, h, w) = (1, 40, 48);
    let x = input(b * 3 * h * w);
    let reference = Engine::load(&path, &cpu())
        .unwrap()
        .run(&x, b, h, w)
        .unwrap();
    let mut fp32 = Engine::load(&path, &openvino(ComputePrecision::Fp32)).unwrap();
    assert_eq!(fp32.provider, Provider::OpenVino);
    assert_eq!(fp32.precision, Some(ComputePrecision::Fp32));
    let out = fp32.run(&x, b, h, w).unwrap();
    let (_, max) = psnr(&out, &reference);
    assert!(max < 1e-4, "fp32 differs from ONNX Runtime by {max}");

    let cpu_info = gendr::openvino_engine::cpu_info().unwrap();
    let auto = Engine::load(&path, &openvino(ComputePrecision::Auto)).unwrap();
    let expected = if cpu_info.bf16 {
        ComputePrecision::Bf16
    } else {
        ComputePrecision::Fp32
    };
    assert_eq!(
        auto.precision,
        Some(expected),
        "auto follows the CPU ({cpu_info:?})"
    );
    if cpu_info.bf16 {
        let out = Engine::load(&path, &openvino(ComputePrecision::Bf16))
            .unwrap()
            .run(&x, b, h, w)
            .unwrap();
        let (db, max) = psnr(&out, &reference);
        // Measured 51.9 dB, max 4/255 on a 256² tile of this model.
        assert!(
            db > 45.0 && max < 8.0 / 255.0,
            "bf16: {db:.1} dB, max {max}"
        );
        assert!(max > 0.0, "bf16 ran in fp32");
    } else {
        match Engine::load(&path, &openvino(ComputePrecision::Bf16)) {
            Err(Error::ProviderUnavailable { provider, .. }) => assert_eq!(provider, "openvino"),
            other => panic!("bf16 on a CPU without it: {other:?}"),
        }
    }
}

#[test]
fn the_model_checks_hold_on_openvino() {
    let options = openvino(ComputePrecision::Fp32);
    let mut nan = Engine::load(&data("nan_x2.onnx"), &options).unwrap();
    let err = nan.run(&input(3 * 16 * 16), 1, 16, 16).unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    for (model, why) in [("rank3_x2.onnx", "rank"), ("two_inputs.onnx", "inputs")] {
        let err = Engine::load(&data(model), &options).unwrap_err();
        assert!(matches!(err, Error::ModelContract { .. }), "{model}: {err}");
        assert!(err.to_string().contains(why), "{model}: {err}");
    }
    // Scale found by a probe run on OpenVINO too.
    let noscale = Engine::load(&data("conv_x2_noscale.onnx"), &options).unwrap();
    assert_eq!(noscale.scale(), 2);
}

#[test]
fn bf16_is_refused_off_openvino_in_one_line() {
    let options = EngineOptions {
        precision: ComputePrecision::Bf16,
        ..cpu()
    };
    let err = Engine::load(&data("conv_x2.onnx"), &options).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidSetting(_)), "{text}");
    assert!(text.contains("openvino") && !text.contains('\n'), "{text}");
}

/// `auto` without a GPU: OpenVINO in bf16 only for a model measured for it,
/// and only where the CPU has bf16; ONNX Runtime otherwise.
#[test]
fn auto_takes_openvino_bf16_only_for_models_measured_for_it() {
    let path = default_model();
    let auto = |auto_bf16, auto_openvino_fp32, precision| {
        Engine::load(
            &path,
            &EngineOptions {
                provider: Provider::Auto,
                precision,
                auto_bf16,
                auto_openvino_fp32,
                ..cpu()
            },
        )
        .unwrap()
    };
    let chosen = |e: Engine| (e.provider, e.precision);
    let bf16 = gendr::openvino_engine::cpu_info().unwrap().bf16;
    let measured = chosen(auto(true, false, ComputePrecision::Auto));
    if bf16 {
        assert_eq!(measured, (Provider::OpenVino, Some(ComputePrecision::Bf16)));
    } else {
        assert_eq!(
            measured,
            (Provider::Cpu, None),
            "no fp32 OpenVINO unless measured"
        );
    }
    assert_eq!(
        chosen(auto(false, false, ComputePrecision::Auto)),
        (Provider::Cpu, None)
    );
    // Asking for fp32 keeps ONNX Runtime's fp32, the reference…
    assert_eq!(
        chosen(auto(true, false, ComputePrecision::Fp32)),
        (Provider::Cpu, None)
    );
    // …unless OpenVINO's fp32 was measured faster for the model.
    let openvino_fp32 = (Provider::OpenVino, Some(ComputePrecision::Fp32));
    assert_eq!(
        chosen(auto(true, true, ComputePrecision::Fp32)),
        openvino_fp32
    );
    // Measured faster in fp32 but not kept in bf16: fp32 on every CPU.
    assert_eq!(
        chosen(auto(false, true, ComputePrecision::Auto)),
        openvino_fp32
    );
    // Both: bf16 where the CPU has it, else OpenVINO's fp32.
    let both = chosen(auto(true, true, ComputePrecision::Auto));
    if bf16 {
        assert_eq!(both, (Provider::OpenVino, Some(ComputePrecision::Bf16)));
    } else {
        assert_eq!(both, openvino_fp32);
    }
}

/// The preset list decides `auto_bf16`, not the caller.
#[test]
fn upscaler_marks_measured_presets_for_bf16() {
    use gendr::upscaler::{Upscaler, UpscalerConfig};
    let open = |model: &str| {
        let config = UpscalerConfig {
            model: model.into(),
            engine: cpu(),
            streams: 1,
            ..UpscalerConfig::default()
        };
        let engine = Upscaler::open(&config).unwrap().assembly.engine;
        (engine.auto_bf16, engine.auto_openvino_fp32)
    };
    for preset in gendr::presets::all().iter().filter(|p| p.speed != "slow") {
        assert_eq!(
            open(&preset.name),
            (preset.auto_bf16, preset.auto_openvino_fp32),
            "{}",
            preset.name
        );
    }
    // No quick preset is measured for OpenVINO's fp32; one slow one is opened.
    let slow = gendr::presets::find("anime-video-x2").unwrap();
    assert_eq!(open(&slow.name), (slow.auto_bf16, slow.auto_openvino_fp32));
    assert_eq!(
        open(default_model().to_str().unwrap()),
        (false, false),
        "a file path is not measured"
    );
}
