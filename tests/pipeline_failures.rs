//! A stage of the frame pipeline that panics must surface as an error at
//! once, never as a stall. Its own test binary: the fault is injected through
//! an environment variable (feature `test-hooks`) that every pipeline in the
//! process reads.

use std::time::{Duration, Instant};

use gendr::engine::Batch;

mod common;
use common::{pipeline, rgb_frame};

#[test]
fn a_panicking_stage_ends_the_pipeline_with_an_error_not_a_stall() {
    // Only this test in this binary sets the variable; each stage reads it per item.
    for stage in ["prepare", "inference", "stitch"] {
        let p = pipeline(1, 2, Batch::UpTo(1));
        std::env::set_var("GENDR_TEST_PANIC_STAGE", stage);
        let _ = p.submit(rgb_frame(40, 30, 1), 0);
        let started = Instant::now();
        let err = match p.recv_timeout(Duration::from_secs(5)) {
            Err(err) => err,
            Ok(None) => panic!("{stage}: no error within 5 s"),
            Ok(Some(out)) => panic!("{stage}: unexpected output {out:?}"),
        };
        std::env::remove_var("GENDR_TEST_PANIC_STAGE");
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = err.to_string();
        assert!(
            text.contains(stage) && text.contains("fault injected"),
            "{text}"
        );
        // Submitters are woken with the same error, not left blocked.
        let refused = p.submit(rgb_frame(40, 30, 2), 1).unwrap_err().to_string();
        assert!(refused.contains("fault injected"), "{refused}");
        assert!(p.failure().is_some());
    }
}
