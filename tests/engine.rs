//! The core library against real ONNX Runtime and the generated test models
//! in tests/data (see tests/data/make_test_models.py).

use std::path::PathBuf;
use std::time::Duration;

use gendr::engine::{Batch, Engine, EngineOptions, Provider};
use gendr::frame::{Colorimetry, Frame, PixelFormat, RgbImage};
use gendr::pipeline::Output;
use gendr::tiling::TileGeometry;
use gendr::upscale::upscale_image;
use gendr::upscaler::{Upscaler, UpscalerConfig};
use gendr::Error;

mod common;
use common::{cpu, data, pipeline, rgb_frame};

/// A busy test image: gradients plus a deterministic texture.
fn test_image(w: usize, h: usize) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    let mut state = 7u32;
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                let noise = (state >> 8) as f32 / (1u32 << 24) as f32;
                img.plane_mut(c)[y * w + x] =
                    0.5 * (x + c * y) as f32 / (w + c * h) as f32 + 0.4 * noise;
            }
        }
    }
    img
}

#[test]
fn tiled_output_equals_whole_frame_output() {
    let mut engine = Engine::load(&data("conv_x2.onnx"), &cpu()).unwrap();
    assert_eq!(engine.scale(), 2);
    let overlap = engine.info.min_overlap;
    assert_eq!(overlap, 3, "the test model's receptive radius");
    let img = test_image(203, 149);
    let whole = TileGeometry::new(512, overlap, 1, 2).unwrap();
    let reference = upscale_image(&mut engine, &whole, Batch::UpTo(1), &img).unwrap();
    for (tile, extra) in [(24, 0), (48, 5), (64, 13)] {
        let tiled = TileGeometry::new(tile, overlap + extra, 1, 2).unwrap();
        assert!(tiled.plan(203, 149).unwrap().len() > 4);
        let out = upscale_image(&mut engine, &tiled, Batch::UpTo(1), &img).unwrap();
        let d = out.max_abs_diff(&reference);
        assert!(d <= 1.0 / 255.0, "tile {tile}: max diff {d}");
    }
    // The output is not trivial: it follows the input.
    let spread = reference.data.iter().fold(0f32, |m, v| m.max(*v))
        - reference.data.iter().fold(1f32, |m, v| m.min(*v));
    assert!(spread > 0.2, "output spread {spread}");
}

#[test]
fn too_little_overlap_shows_seams() {
    // The check above could pass vacuously if tiling ignored the overlap;
    // with none, a 3-pixel receptive radius must show at the seams.
    let mut engine = Engine::load(&data("conv_x2.onnx"), &cpu()).unwrap();
    let img = test_image(120, 90);
    let whole = TileGeometry::new(256, 3, 1, 2).unwrap();
    let reference = upscale_image(&mut engine, &whole, Batch::UpTo(1), &img).unwrap();
    let seamy = TileGeometry::new(32, 0, 1, 2).unwrap();
    let out = upscale_image(&mut engine, &seamy, Batch::UpTo(1), &img).unwrap();
    assert!(out.max_abs_diff(&reference) > 2.0 / 255.0);
}

#[test]
fn scale_is_derived_without_metadata() {
    let engine = Engine::load(&data("conv_x2_noscale.onnx"), &cpu()).unwrap();
    assert_eq!(engine.scale(), 2);
}

#[test]
fn fixed_shape_models_force_the_tile_size() {
    let mut engine = Engine::load(&data("fixed64_x2.onnx"), &cpu()).unwrap();
    assert_eq!(engine.info.fixed_size, Some((64, 64)));
    let (geometry, notes) = engine.info.geometry(128, 3).unwrap();
    assert_eq!((geometry.tile_width, geometry.tile_height), (64, 64));
    assert!(notes.iter().any(|n| n.contains("fixed")), "{notes:?}");
    for (w, h) in [(1, 1), (37, 90), (130, 20)] {
        let out = upscale_image(&mut engine, &geometry, Batch::UpTo(1), &test_image(w, h)).unwrap();
        assert_eq!((out.width, out.height), (2 * w, 2 * h));
    }
}

#[test]
fn models_that_break_the_contract_are_refused_with_a_reason() {
    let cases = [
        ("wrong_channels.onnx", "channels"),
        ("two_inputs.onnx", "2 inputs"),
        ("not_a_model.onnx", "could not be loaded"),
        ("missing.onnx", "does not exist"),
    ];
    for (file, expected) in cases {
        let err = Engine::load(&data(file), &cpu()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expected), "{file}: {text}");
        assert!(!text.contains('\n'), "{file}: one line: {text}");
    }
}

#[test]
fn forced_gpu_provider_without_gpu_runtime_is_an_error() {
    let options = EngineOptions {
        provider: Provider::Cuda,
        ..cpu()
    };
    match Engine::load(&data("conv_x2.onnx"), &options) {
        Err(Error::ProviderUnavailable { provider, .. }) => assert_eq!(provider, "cuda"),
        Ok(engine) => assert_eq!(
            engine.provider,
            Provider::Cuda,
            "a forced provider never falls back"
        ),
        Err(other) => panic!("unexpected error: {other}"),
    }
    let auto = Engine::load(
        &data("conv_x2.onnx"),
        &EngineOptions {
            provider: Provider::Auto,
            ..cpu()
        },
    )
    .unwrap();
    assert_ne!(auto.provider, Provider::Auto);
}

#[test]
fn pipeline_keeps_order_and_matches_the_direct_path() {
    // One tile per run, and a frame's tiles in one run: the same pixels.
    for batch in [Batch::UpTo(1), Batch::UpTo(usize::MAX)] {
        keeps_order_and_matches_the_direct_path(batch);
    }
}

fn keeps_order_and_matches_the_direct_path(batch: Batch) {
    let p = pipeline(2, 4, batch);
    let mut engine = Engine::load(&data("conv_x2.onnx"), &cpu()).unwrap();
    let geometry = TileGeometry::new(32, 3, 1, 2).unwrap();
    let frames: Vec<Frame> = (0..6)
        .map(|i| rgb_frame(70 + i, 40, (i * 40) as u8))
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, f) in frames.iter().enumerate() {
                p.submit(f.clone(), i as u32).unwrap();
                if i == 2 {
                    p.submit_marker(100).unwrap();
                }
            }
            p.submit_marker(200).unwrap();
        });
        let mut seen = Vec::new();
        while seen.last() != Some(&200) {
            match p
                .recv_timeout(Duration::from_secs(30))
                .unwrap()
                .expect("output within 30 s")
            {
                Output::Frame { frame, meta, .. } => {
                    let src = &frames[meta as usize];
                    assert_eq!((frame.width, frame.height), (2 * src.width, 2 * src.height));
                    let rgb = gendr::color::frame_to_rgb(src);
                    let direct =
                        upscale_image(&mut engine, &geometry, Batch::UpTo(1), &rgb).unwrap();
                    let expected = gendr::color::rgb_to_frame(
                        &direct,
                        PixelFormat::Rgb,
                        Colorimetry::default(),
                    )
                    .unwrap();
                    assert_eq!(
                        frame.planes[0].data, expected.planes[0].data,
                        "frame {meta}, {batch:?}"
                    );
                    seen.push(meta);
                }
                Output::Marker(m) => seen.push(m),
                Output::Failed { error, .. } => panic!("{error}"),
            }
        }
        assert_eq!(seen, vec![0, 1, 2, 100, 3, 4, 5, 200]);
    });
    assert_eq!(p.in_flight(), 0);
}

#[test]
fn flush_drops_what_is_in_flight_and_carries_on() {
    let p = pipeline(1, 3, Batch::UpTo(1));
    for i in 0..3 {
        p.submit(rgb_frame(300, 200, i as u8), i).unwrap();
    }
    p.flush();
    p.submit(rgb_frame(20, 10, 9), 9).unwrap();
    p.submit_marker(10).unwrap();
    let mut seen = Vec::new();
    while let Some(out) = p.recv_timeout(Duration::from_secs(30)).unwrap() {
        match out {
            Output::Frame { meta, .. } => seen.push(meta),
            Output::Marker(m) => {
                seen.push(m);
                break;
            }
            Output::Failed { error, .. } => panic!("{error}"),
        }
    }
    assert_eq!(seen, vec![9, 10]);
    assert_eq!(p.in_flight(), 0);
}

#[test]
fn close_wakes_a_blocked_submitter() {
    let p = pipeline(1, 1, Batch::UpTo(1));
    p.submit(rgb_frame(400, 300, 1), 1).unwrap();
    std::thread::scope(|s| {
        let blocked = s.spawn(|| p.submit(rgb_frame(400, 300, 2), 2));
        std::thread::sleep(Duration::from_millis(100));
        p.close();
        assert!(matches!(
            blocked.join().unwrap(),
            Err(Error::PipelineClosed)
        ));
    });
}

#[test]
fn gendr_tiny_metadata_snaps_tiles_to_the_latent_grid() {
    let path = gendr::presets::resolve("gendr-tiny").unwrap();
    let mut engine = Engine::load(&path, &cpu()).unwrap();
    assert_eq!(engine.scale(), 4);
    assert_eq!(
        engine.info.tile_multiple, 2,
        "output must be a multiple of 8 for the f8 VAE"
    );
    let (geometry, notes) = engine.info.geometry(51, 2).unwrap();
    assert_eq!(geometry.tile_width, 52);
    assert_eq!(geometry.overlap, engine.info.min_overlap);
    assert!(
        geometry.overlap * 4 >= 32,
        "at least 32 output pixels of overlap"
    );
    assert_eq!(notes.len(), 2, "{notes:?}");
    // Odd frame sizes still come out exactly ×4.
    let img = test_image(37, 23);
    let out = upscale_image(&mut engine, &geometry, Batch::UpTo(1), &img).unwrap();
    assert_eq!((out.width, out.height), (148, 92));
    assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn tensorrt_cache_folders_are_keyed_by_model_and_runtime() {
    let root = tempfile::tempdir().unwrap();
    let a = gendr::engine::trt_cache_dir(root.path(), &data("conv_x2.onnx")).unwrap();
    let again = gendr::engine::trt_cache_dir(root.path(), &data("conv_x2.onnx")).unwrap();
    let b = gendr::engine::trt_cache_dir(root.path(), &data("slow_x2.onnx")).unwrap();
    assert_eq!(a, again);
    assert_ne!(a, b);
    assert!(a.is_dir() && a.starts_with(root.path()));
    let name = a.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with(&format!("-ort{}-fp16", gendr::runtime::ORT_VERSION)),
        "{name}"
    );
    assert_eq!(name.split('-').next().unwrap().len(), 16, "{name}");
}

#[test]
fn a_dynamic_batch_takes_a_frames_tiles_together() {
    let mut engine = Engine::load(&data("conv_x2.onnx"), &cpu()).unwrap();
    // On the CPU the default is one tile per run; a number is taken as asked.
    assert_eq!(engine.batch(0), Batch::UpTo(1));
    assert_eq!(engine.batch(5), Batch::UpTo(5));
    // Likewise one worker by default on the CPU.
    assert_eq!((engine.streams(0), engine.streams(3)), (1, 3));
    let img = test_image(150, 100);
    let geometry = TileGeometry::new(48, 3, 1, 2).unwrap();
    let tiles = geometry.plan(150, 100).unwrap().len();
    assert!(tiles > 5, "{tiles} tiles");
    assert_eq!(Batch::UpTo(4).chunk(tiles), 4);
    assert_eq!(Batch::UpTo(usize::MAX).chunk(tiles), tiles);
    let one_by_one = upscale_image(&mut engine, &geometry, Batch::UpTo(1), &img).unwrap();
    for batch in [Batch::UpTo(4), Batch::UpTo(usize::MAX)] {
        let out = upscale_image(&mut engine, &geometry, batch, &img).unwrap();
        let d = out.max_abs_diff(&one_by_one);
        assert!(d <= 1e-5, "{batch:?}: max diff {d}");
    }
    // A model with a fixed batch always gets it.
    let fixed = Engine::load(&data("fixed64_x2.onnx"), &cpu()).unwrap();
    assert_eq!(fixed.batch(8), Batch::Fixed(1));
}

#[test]
fn a_model_that_pads_its_edges_gives_the_same_pixels_without_edge_context() {
    // The shipped default (waifu2x) reflects its own input edges, as gendr's
    // context does, so leaving that context out changes nothing but the cost.
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/waifu2x-upconv7-photo-x2.onnx");
    let mut engine = Engine::load(&path, &cpu()).unwrap();
    assert!(
        engine.info.pads_edges,
        "gendr.border = reflect in its metadata"
    );
    let img = test_image(90, 70);
    for tile in [256, 40] {
        let (geometry, _) = engine.info.geometry(tile, 0).unwrap();
        assert!(!geometry.edge_context);
        let with_context = TileGeometry {
            edge_context: true,
            ..geometry
        };
        let plan = geometry.plan(90, 70).unwrap();
        let padded = with_context.plan(90, 70).unwrap();
        assert_eq!(plan.cols[0].start, 0);
        assert!(
            plan.tile_size().0 * plan.tile_size().1 * plan.len()
                < padded.tile_size().0 * padded.tile_size().1 * padded.len()
        );
        let out = upscale_image(&mut engine, &geometry, Batch::UpTo(1), &img).unwrap();
        let reference = upscale_image(&mut engine, &with_context, Batch::UpTo(1), &img).unwrap();
        let d = out.max_abs_diff(&reference);
        assert!(d <= 1e-4, "tile {tile}: max diff {d}");
    }
}

#[test]
fn frames_smaller_than_a_models_own_padding_still_work() {
    // waifu2x reflect-pads 7 px itself, which needs more than 7 px of input.
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/waifu2x-upconv7-photo-x2.onnx");
    let mut engine = Engine::load(&path, &cpu()).unwrap();
    let (geometry, _) = engine.info.geometry(0, 0).unwrap();
    for (w, h) in [(1, 1), (3, 7), (8, 2), (30, 5)] {
        let out = upscale_image(&mut engine, &geometry, Batch::UpTo(1), &test_image(w, h))
            .unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
        assert_eq!((out.width, out.height), (2 * w, 2 * h));
    }
}

#[test]
fn a_timing_run_goes_between_frames_without_disturbing_them() {
    let p = pipeline(1, 4, Batch::UpTo(1));
    p.submit(rgb_frame(60, 40, 10), 0).unwrap();
    let took = p.time_run((24, 24), 2).unwrap();
    assert!(took > Duration::ZERO);
    p.submit(rgb_frame(60, 40, 20), 1).unwrap();
    for want in 0..2 {
        match p
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("output")
        {
            Output::Frame { meta, frame, .. } => {
                assert_eq!(meta, want);
                assert_eq!((frame.width, frame.height), (120, 80));
            }
            _ => panic!("frame {want} expected"),
        }
    }
    // A size the model cannot take is an error, not a hang.
    assert!(p.time_run((0, 24), 1).is_err());
}

#[test]
fn fp16_models_run_and_match_their_fp32_twin() {
    let mut half = Engine::load(&data("conv_x2_fp16.onnx"), &cpu()).unwrap();
    assert_eq!(half.info.precision, gendr::model::Precision::Fp16);
    let mut full = Engine::load(&data("conv_x2.onnx"), &cpu()).unwrap();
    let img = test_image(70, 50);
    let geometry = TileGeometry::new(32, 3, 1, 2).unwrap();
    let a = upscale_image(&mut half, &geometry, Batch::UpTo(2), &img).unwrap();
    let b = upscale_image(&mut full, &geometry, Batch::UpTo(2), &img).unwrap();
    let d = a.max_abs_diff(&b);
    // float16 keeps about 3 decimal digits through three convolutions.
    assert!(d > 0.0 && d < 0.02, "max diff {d}");
}

#[test]
fn a_wrongly_sized_input_is_an_error_not_a_panic() {
    let mut engine = Engine::load(&data("conv_x2.onnx"), &cpu()).unwrap();
    let err = engine.run(&[0.5; 10], 1, 4, 4).unwrap_err();
    assert!(err.to_string().contains("10 values"), "{err}");
}

/// Opens a model through the one assembly point, on the CPU.
fn open(model: &str) -> gendr::Result<Upscaler> {
    Upscaler::open(&UpscalerConfig {
        model: data(model).display().to_string(),
        engine: cpu(),
        ..UpscalerConfig::default()
    })
}

#[test]
fn numbers_from_a_model_file_are_bounded_before_anything_is_allocated() {
    // Each of these aborted or panicked the process before.
    for (model, says) in [
        (
            "bad_multiple_x2.onnx",
            "gendr.tile_multiple=\"1000000\" is not an integer from 1 to 512",
        ),
        (
            "bad_scale_x2.onnx",
            "gendr.scale=\"18446744073709551615\" is not an integer from 1 to 16",
        ),
        ("fixed_huge_x2.onnx", "needs 3840 MiB (at most 2048 MiB)"),
        ("rank3_x2.onnx", "rank 3"),
    ] {
        let err = open(model)
            .err()
            .unwrap_or_else(|| panic!("{model} was accepted"));
        let text = err.to_string();
        assert!(text.contains(says), "{model}: {text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }
}

#[test]
fn non_finite_model_output_is_an_error_naming_the_model() {
    let err = open("nan_x2.onnx")
        .err()
        .expect("a NaN model is refused at warm-up");
    let text = err.to_string();
    assert!(text.contains("NaN or infinite"), "{text}");
    assert!(text.contains("nan_x2.onnx"), "{text}");
}

#[test]
fn the_assembly_point_decides_geometry_batch_and_workers_once() {
    let up = open("conv_x2.onnx").unwrap();
    let a = &up.assembly;
    assert_eq!((a.scale(), a.provider, a.streams), (2, Provider::Cpu, 1));
    assert_eq!(a.batch, Batch::UpTo(1));
    // The model's preferred 64 px tile and minimum overlap of 3, raised from 0? No: 8 asked.
    assert_eq!((a.geometry.tile_width, a.geometry.overlap), (64, 8));
    // The same request gives the same assembly.
    assert_eq!(open("conv_x2.onnx").unwrap().assembly, *a);
}
