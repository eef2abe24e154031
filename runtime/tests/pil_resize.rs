//! `pil_resize` against Pillow's `Image.resize` on uint8 RGB, value for value.
//! References: `fixtures/pil_resize/`, written by `make_pil_resize_reference.py`.

use ndarray::{s, Array3};
use serde_json::Value;
use std::path::{Path, PathBuf};
use vjx_runtime::preprocess::pil_resize::{pil_resize, PilFilter};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pil_resize")
}

fn npy(name: &str) -> Array3<u8> {
    let path = fixtures().join(format!("{name}.npy"));
    ndarray_npy::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn filter(name: &str) -> PilFilter {
    match name {
        "nearest" => PilFilter::Nearest,
        "bilinear" => PilFilter::Bilinear,
        "bicubic" => PilFilter::Bicubic,
        "lanczos" => PilFilter::Lanczos,
        other => panic!("unknown filter {other}"),
    }
}

struct Case {
    input: Array3<u8>,
    output: Array3<u8>,
    expected: Array3<u8>,
}

/// Resizes the case's crop (a strided view of the stored source) as the index says.
fn run(name: &str) -> Case {
    let path = fixtures().join("index.json");
    let index: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let case = &index["cases"][name];
    let usize_at = |key: &str, i: usize| case[key][i].as_u64().unwrap() as usize;
    let [y0, y1, x0, x1] = [0, 1, 2, 3].map(|i| usize_at("crop", i));
    let size = [usize_at("size", 0), usize_at("size", 1)];
    let source = npy(case["source"].as_str().unwrap());
    let crop = source.slice(s![y0..y1, x0..x1, ..]);
    let output = pil_resize(crop, size, filter(case["filter"].as_str().unwrap()));
    Case {
        input: crop.to_owned(),
        output,
        expected: npy(name),
    }
}

fn assert_matches_pillow(name: &str) -> Case {
    let case = run(name);
    assert_eq!(case.output.dim(), case.expected.dim(), "{name}: shape");
    let differing = case
        .output
        .iter()
        .zip(&case.expected)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing,
        0,
        "{name}: {differing} of {} values differ from Pillow",
        case.expected.len()
    );
    case
}

#[test]
fn dexvla_240x320_to_252x308_bicubic_matches_pillow() {
    assert_matches_pillow("dexvla_240x320_to_252x308_bicubic");
}

#[test]
fn downscale_300x400_to_224x224_bicubic_matches_pillow() {
    assert_matches_pillow("down_300x400_to_224x224_bicubic");
}

#[test]
fn large_downscale_300x400_to_20x30_lanczos_matches_pillow() {
    assert_matches_pillow("down_300x400_to_20x30_lanczos");
}

#[test]
fn upscale_height_downscale_width_17x23_to_40x9_bilinear_matches_pillow() {
    assert_matches_pillow("small_17x23_to_40x9_bilinear");
}

#[test]
fn upscale_height_downscale_width_17x23_to_40x9_bicubic_matches_pillow() {
    assert_matches_pillow("small_17x23_to_40x9_bicubic");
}

#[test]
fn upscale_height_downscale_width_17x23_to_40x9_lanczos_matches_pillow() {
    assert_matches_pillow("small_17x23_to_40x9_lanczos");
}

#[test]
fn nearest_17x23_to_40x9_matches_pillow() {
    assert_matches_pillow("small_17x23_to_40x9_nearest");
}

#[test]
fn nearest_300x400_to_37x53_matches_pillow() {
    assert_matches_pillow("down_300x400_to_37x53_nearest");
}

#[test]
fn same_size_is_a_copy() {
    let case = assert_matches_pillow("identity_64x64_bicubic");
    assert_eq!(case.output, case.input);
    for filter in [PilFilter::Nearest, PilFilter::Bilinear, PilFilter::Lanczos] {
        assert_eq!(pil_resize(case.input.view(), [64, 64], filter), case.input);
    }
}

#[test]
fn over_100_times_taller_than_wide_shrinks_height_first_bicubic() {
    assert_matches_pillow("tall_202x2_to_60x5_bicubic");
}

#[test]
fn over_100_times_taller_than_wide_shrinks_height_first_lanczos() {
    assert_matches_pillow("tall_202x2_to_60x5_lanczos");
}

#[test]
fn one_pixel_wide_tall_column_shrinks_and_widens() {
    assert_matches_pillow("tall_150x1_to_50x3_bicubic");
}

#[test]
fn one_pixel_wide_tall_column_shrinks_in_height_only() {
    assert_matches_pillow("tall_150x1_to_50x1_bicubic");
}

#[test]
fn one_pixel_wide_tall_column_grows() {
    assert_matches_pillow("tall_150x1_to_160x2_bicubic");
}

#[test]
fn one_pixel_wide_column_9x1_to_5x4_bicubic_matches_pillow() {
    assert_matches_pillow("column_9x1_to_5x4_bicubic");
}

#[test]
fn one_pixel_tall_row_1x9_to_4x5_bicubic_matches_pillow() {
    assert_matches_pillow("row_1x9_to_4x5_bicubic");
}

#[test]
fn single_pixel_1x1_to_3x2_lanczos_matches_pillow() {
    assert_matches_pillow("pixel_1x1_to_3x2_lanczos");
}

#[test]
fn column_17x1_to_single_pixel_bilinear_matches_pillow() {
    assert_matches_pillow("column_17x1_to_1x1_bilinear");
}

#[test]
fn every_fixture_case_has_a_test() {
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("index.json")).unwrap())
            .unwrap();
    let tests = include_str!("pil_resize.rs");
    for name in index["cases"].as_object().unwrap().keys() {
        assert!(tests.contains(&format!("\"{name}\"")), "{name} has no test");
    }
}
