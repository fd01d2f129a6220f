//! A forced OpenVINO provider whose runtime cannot be found fails in one
//! line naming the make target that installs it (its own test binary: the
//! runtime is looked up once per process).

use gendr::engine::{ComputePrecision, Engine, EngineOptions, Provider};
use gendr::Error;

mod common;
use common::{cpu, data};

#[test]
fn a_missing_runtime_is_one_line_naming_the_make_target() {
    std::env::set_var(
        gendr::openvino_runtime::LIBRARY_ENV,
        "/nonexistent/libopenvino_c.so",
    );
    let options = EngineOptions {
        provider: Provider::OpenVino,
        precision: ComputePrecision::Fp32,
        ..cpu()
    };
    let err = Engine::load(&data("conv_x2.onnx"), &options).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::ProviderUnavailable { .. }), "{text}");
    assert!(
        text.contains("make openvino-runtime") && !text.contains('\n'),
        "{text}"
    );
    // bf16 under auto can only be OpenVINO: the same line, not a silent
    // fp32 run on another provider.
    let err = Engine::load(
        &data("conv_x2.onnx"),
        &EngineOptions {
            provider: Provider::Auto,
            precision: ComputePrecision::Bf16,
            ..cpu()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("make openvino-runtime"), "{err}");
    // A model measured for OpenVINO under auto still runs, on ONNX Runtime,
    // when the OpenVINO runtime is not installed.
    for (auto_bf16, auto_openvino_fp32) in [(true, false), (false, true), (true, true)] {
        let fallback = Engine::load(
            &data("conv_x2.onnx"),
            &EngineOptions {
                provider: Provider::Auto,
                auto_bf16,
                auto_openvino_fp32,
                ..cpu()
            },
        )
        .unwrap();
        assert_eq!(fallback.provider, Provider::Cpu);
    }
}
