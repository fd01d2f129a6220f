//! A frame-pipeline stage that dies mid-run ends `gendr upscale` with one
//! line and a non-zero exit, leaving no file behind. The fault is injected
//! through gendr's `test-hooks` feature, which test builds enable.

use gendr_test_support::{gendr, model, repo, run, stderr};

#[test]
fn a_dead_stage_fails_the_run_with_one_line_and_leaves_nothing() {
    for stage in ["prepare", "inference", "stitch"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.mp4");
        let run = run(gendr()
            .args(["upscale", "-q", "-m", &model("conv_x2.onnx")])
            .arg(repo("samples/bikes_160x68_2s.mp4"))
            .arg(&out)
            .env("GENDR_TEST_PANIC_STAGE", stage)
            .env("GENDR_LOG", "off"));
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{stage}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains(stage) && last.contains("fault injected"),
            "{stage}: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{stage}: left {left:?}");
    }
}
