//! A stage of the frame pipeline that dies must reach the bus as an error
//! at once, and leave the element idle, never spinning. Its own binary: the
//! fault is injected through an environment variable (gendr's `test-hooks`
//! feature) that every pipeline in the process reads.

use std::time::{Duration, Instant};

use gst::prelude::*;

use gendr_test_support::{model, pipeline_with_sink};

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

#[test]
fn a_dead_stage_posts_an_error_within_a_second_and_leaves_the_cpu_idle() {
    let stages = ["prepare", "inference", "stitch"].map(|stage| (stage, "cpu"));
    // The OpenVINO engine dies the same way mid-stream.
    for (stage, provider) in stages.into_iter().chain([("inference", "openvino")]) {
        std::env::set_var("GENDR_TEST_PANIC_STAGE", stage);
        let (pipeline, _sink) = pipeline_with_sink(&format!(
            "videotestsrc num-buffers=50 ! video/x-raw,width=64,height=48 ! \
             gendrsr model={} provider={provider} ! appsink name=sink sync=false",
            model("conv_x2.onnx")
        ));
        pipeline.set_state(gst::State::Playing).unwrap();
        let started = Instant::now();
        let msg = pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(10),
                &[gst::MessageType::Error, gst::MessageType::Eos],
            )
            .expect("a message within 10 s");
        let took = started.elapsed();
        let gst::MessageView::Error(err) = msg.view() else {
            panic!("{stage}: EOS instead of an error");
        };
        let text = err.error().to_string();
        assert!(
            text.contains(stage) && text.contains("fault injected"),
            "{stage}: {text}"
        );
        assert!(
            took < Duration::from_secs(1),
            "{stage}: error after {took:?}"
        );
        // Still PLAYING: nothing may spin on the dead pipeline.
        let before = cpu_time();
        std::thread::sleep(Duration::from_secs(1));
        let busy = cpu_time() - before;
        println!("{stage} on {provider}: error after {took:?}; {busy:?} CPU in the next second");
        assert!(
            busy < Duration::from_millis(100),
            "{stage}: {busy:?} CPU while idle"
        );
        pipeline.set_state(gst::State::Null).unwrap();
        std::env::remove_var("GENDR_TEST_PANIC_STAGE");
    }
}
