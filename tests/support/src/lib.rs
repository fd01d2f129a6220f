//! Helpers shared by the test suites of the gendr crates: where the checkout
//! and its fixtures are, GStreamer set-up with gendrsr registered, and the
//! output of the `gendr` binary.

use std::path::PathBuf;
use std::process::Output;
use std::sync::Once;

use gst::prelude::*;

/// The checkout's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path inside the checkout, e.g. `repo("samples/bbb_320x180_2s.mp4")`.
pub fn repo(path: &str) -> PathBuf {
    repo_root().join(path)
}

/// A fixture in `tests/data` (the generated test models and eval images).
pub fn data(name: &str) -> PathBuf {
    repo("tests/data").join(name)
}

/// A test model's path, as gendrsr's `model` property takes it.
pub fn model(name: &str) -> String {
    data(name).display().to_string()
}

/// A process's standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Initialises GStreamer and registers gendrsr, once per test binary.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstgendrsr::plugin_register_static().expect("register gendrsr");
    });
}

/// Builds a pipeline from a description with an appsink named `sink`.
pub fn pipeline_with_sink(description: &str) -> (gst::Pipeline, gst_app::AppSink) {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .expect("an element named sink")
        .downcast::<gst_app::AppSink>()
        .expect("sink is an appsink");
    (pipeline, sink)
}
