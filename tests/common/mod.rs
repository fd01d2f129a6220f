//! Helpers shared by the test files of the plugin and the CLI packages.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::sync::Once;

use gst::prelude::*;

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
