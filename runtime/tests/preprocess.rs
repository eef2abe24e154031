//! Host-side preprocessing against hand-checked values and against upstream's golden fixtures
//! (`tests/fixtures/vla_jepa/<case>/`).

use ndarray::{array, Array1, Array2, Array3};
use serde_json::Value;
use std::path::{Path, PathBuf};
use vjx_format::chat_template::load_chat_template;
use vjx_format::SpecError;
use vjx_runtime::preprocess::image::{
    antialiased_resize, area_resize, load_rgb_f32, to_three_channels, ResizeFilter,
};
use vjx_runtime::preprocess::prompt::{
    action_prompt, instruction_prompt, num_action_prompt_steps, render_chat, render_messages,
    PromptSpec, DEFAULT_INSTRUCTION,
};
use vjx_runtime::preprocess::qwen_image::{
    process_images, smart_resize, QwenImageProcessorConfig, QwenVisionInputs,
};
use vjx_runtime::preprocess::tokenize::{expand_image_pads, PolicyTokenSpec, PolicyTokenizer};
use vjx_runtime::preprocess::PreprocessError;

const UPSTREAM_TEMPLATE: &str = "Your task is {instruction}. Infer the temporal dynamics from frames {actions} and produce the corresponding policy actions {e_actions}.";

// ---------------------------------------------------------------------------------------------
// smart_resize

const QWEN3_MIN_PIXELS: u64 = 65536;
const QWEN3_MAX_PIXELS: u64 = 16_777_216;

#[test]
fn smart_resize_upscales_224_square_to_256_to_reach_min_pixels() {
    assert_eq!(
        smart_resize(224, 224, 32, QWEN3_MIN_PIXELS, QWEN3_MAX_PIXELS).unwrap(),
        [256, 256]
    );
}

#[test]
fn smart_resize_keeps_sizes_that_already_fit() {
    assert_eq!(
        smart_resize(256, 256, 32, QWEN3_MIN_PIXELS, QWEN3_MAX_PIXELS).unwrap(),
        [256, 256]
    );
    assert_eq!(
        smart_resize(480, 640, 32, QWEN3_MIN_PIXELS, QWEN3_MAX_PIXELS).unwrap(),
        [480, 640]
    );
}

#[test]
fn smart_resize_min_pixels_branch_rounds_each_side_up() {
    // 240·320 = 76800 ≥ 65536 but round(240/32)=8 (7.5 → 8), so 256×320.
    assert_eq!(
        smart_resize(240, 320, 32, QWEN3_MIN_PIXELS, QWEN3_MAX_PIXELS).unwrap(),
        [256, 320]
    );
    // 52×44 → 64×32 = 2048 < 4096: β = sqrt(4096/2288), ceil(52β/32)=3, ceil(44β/32)=2.
    assert_eq!(smart_resize(52, 44, 32, 4096, 8192).unwrap(), [96, 64]);
}

#[test]
fn smart_resize_rounds_half_to_even_like_python() {
    // 720/32 = 22.5 → 22 (not 23): 704×1280.
    assert_eq!(
        smart_resize(720, 1280, 32, QWEN3_MIN_PIXELS, QWEN3_MAX_PIXELS).unwrap(),
        [704, 1280]
    );
    // 80/32 = 2.5 → 2, 112/32 = 3.5 → 4.
    assert_eq!(smart_resize(80, 112, 32, 1024, 65536).unwrap(), [64, 128]);
}

#[test]
fn smart_resize_max_pixels_branch_floors_each_side() {
    // 120×160 → 128×160 = 20480 > 8192: β = sqrt(19200/8192), floor(120/β/32)=2, floor(160/β/32)=3.
    assert_eq!(smart_resize(120, 160, 32, 4096, 8192).unwrap(), [64, 96]);
}

#[test]
fn smart_resize_refuses_aspect_ratios_over_200() {
    assert!(matches!(
        smart_resize(1, 201, 32, 1024, 65536),
        Err(PreprocessError::ImageShape { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// area resize and antialiased bicubic resize

fn sample_4x5() -> Array3<f32> {
    array![[
        [0.0, 0.1, 0.4, 0.9, 1.0],
        [0.3, 0.7, 0.2, 0.5, 0.8],
        [1.0, 0.0, 0.6, 0.1, 0.25],
        [0.5, 0.45, 0.35, 0.95, 0.05]
    ]]
}

fn assert_close(actual: &Array3<f32>, expected: &Array3<f32>, tolerance: f32) {
    assert_eq!(actual.dim(), expected.dim());
    for ((index, a), e) in actual.indexed_iter().zip(expected.iter()) {
        assert!((a - e).abs() <= tolerance, "at {index:?}: {a} vs {e}");
    }
}

#[test]
fn area_resize_averages_overlapping_windows() {
    // 4×5 → 3×2: rows [0,2) [1,3) [2,4), columns [0,3) [2,5).
    // Top-left: mean(0.0 0.1 0.4 / 0.3 0.7 0.2) = 1.7/6.
    let out = area_resize(sample_4x5().view(), [3, 2]);
    let expected = array![[
        [0.283_333_33, 0.633_333_3],
        [0.466_666_7, 0.408_333_3],
        [0.483_333_32, 0.383_333_33]
    ]];
    assert_close(&out, &expected, 1e-7);
}

#[test]
fn area_resize_with_uneven_windows_matches_torch() {
    // 4×5 → 2×3: rows [0,2) [2,4), columns [0,2) [1,4) [3,5). Values from torch
    // `F.interpolate(x, size=(2, 3), mode="area")`.
    let out = area_resize(sample_4x5().view(), [2, 3]);
    let expected = array![[
        [0.275, 0.466_666_67, 0.8],
        [0.4875, 0.408_333_33, 0.337_499_98]
    ]];
    assert_close(&out, &expected, 1e-7);
}

#[test]
fn antialiased_bicubic_upsamples_height_and_downsamples_width_like_torch() {
    // torch 2.11 `F.interpolate(x, size=(6, 3), mode="bicubic", antialias=True, align_corners=False)`.
    let out = antialiased_resize(sample_4x5().view(), [6, 3], ResizeFilter::Bicubic);
    let expected = array![[
        [-0.013_036_333, 0.446_511_66, 1.003_724_5],
        [0.224_796_41, 0.411_190_18, 0.863_529_4],
        [0.513_171_4, 0.359_424_53, 0.590_600_1],
        [0.580_471_8, 0.319_835_84, 0.230_350_78],
        [0.525_656_1, 0.430_875_54, 0.294_162_93],
        [0.456_103_24, 0.541_373_97, 0.455_577]
    ]];
    assert_close(&out, &expected, 1e-6);
}

#[test]
fn antialiased_resize_to_the_same_size_is_the_identity() {
    let image = sample_4x5();
    assert_eq!(
        antialiased_resize(image.view(), [4, 5], ResizeFilter::Bicubic),
        image
    );
}

#[test]
fn single_channel_images_become_three_equal_channels() {
    let gray = Array3::from_shape_vec((1, 1, 2), vec![0.25f32, 0.75]).unwrap();
    let rgb = to_three_channels(gray);
    assert_eq!(
        rgb,
        Array3::from_shape_vec((3, 1, 2), vec![0.25, 0.75, 0.25, 0.75, 0.25, 0.75]).unwrap()
    );
}

#[test]
fn loading_a_missing_image_names_the_file() {
    let err = load_rgb_f32(Path::new("/nonexistent/cam.png")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cam.png"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Qwen image processor

fn unnormalized_config() -> QwenImageProcessorConfig {
    QwenImageProcessorConfig {
        min_pixels: 1024,
        max_pixels: 65536,
        patch_size: 16,
        temporal_patch_size: 2,
        merge_size: 2,
        do_normalize: false,
        ..QwenImageProcessorConfig::default()
    }
}

/// A 3×64×96 image whose pixel value encodes its position: c·10⁴ + y·100 + x.
fn position_coded_image() -> Array3<f32> {
    Array3::from_shape_fn((3, 64, 96), |(c, y, x)| (c * 10_000 + y * 100 + x) as f32)
}

#[test]
fn patch_rows_run_over_merge_blocks_then_inside_each_block() {
    let out = process_images(&[position_coded_image().view()], &unnormalized_config()).unwrap();
    assert_eq!(out.pixel_values.dim(), (4 * 6, 3 * 2 * 16 * 16));
    // Row r = block·4 + in_y·2 + in_x; its first value is channel 0, frame 0, pixel (top, left).
    let first = |row: usize| out.pixel_values[[row, 0]];
    assert_eq!(first(0), 0.0); // block (0,0), patch (0,0)
    assert_eq!(first(1), 16.0); // block (0,0), patch (0,1): x = 16
    assert_eq!(first(2), 1600.0); // block (0,0), patch (1,0): y = 16
    assert_eq!(first(4), 32.0); // block (0,1): x = 32
    assert_eq!(first(3 * 4), 3200.0); // block (1,0): y = 32
}

#[test]
fn patch_columns_are_channel_then_frame_then_pixel_with_the_frame_repeated() {
    let out = process_images(&[position_coded_image().view()], &unnormalized_config()).unwrap();
    let row = out.pixel_values.row(0);
    assert_eq!(row[3 * 16 + 5], 305.0); // c0, t0, y3, x5
    assert_eq!(row[256 + 3 * 16 + 5], 305.0); // c0, t1: the same frame again
    assert_eq!(row[2 * 512 + 7 * 16 + 1], 20_701.0); // c2, t0, y7, x1
}

#[test]
fn image_grid_thw_lists_one_frame_and_the_patch_grid_per_image() {
    let small = Array3::<f32>::zeros((3, 64, 64));
    let out = process_images(
        &[position_coded_image().view(), small.view()],
        &unnormalized_config(),
    )
    .unwrap();
    assert_eq!(out.image_grid_thw, array![[1, 4, 6], [1, 4, 4]]);
    assert_eq!(out.tokens_per_image(2), vec![6, 4]);
    assert_eq!(out.pixel_values.nrows(), 24 + 16);
}

#[test]
fn normalization_maps_zero_one_to_minus_one_one_with_half_mean_and_std() {
    let config = QwenImageProcessorConfig {
        do_normalize: true,
        image_mean: [0.5; 3],
        image_std: [0.5; 3],
        ..unnormalized_config()
    };
    let image = Array3::from_shape_fn((3, 32, 32), |(c, _, _)| c as f32 * 0.5);
    let out = process_images(&[image.view()], &config).unwrap();
    assert_eq!(out.pixel_values[[0, 0]], -1.0);
    assert_eq!(out.pixel_values[[0, 512]], 0.0);
    assert_eq!(out.pixel_values[[0, 1024]], 1.0);
}

#[test]
fn processor_config_reads_size_and_lets_min_max_pixels_override_it() {
    let json = serde_json::json!({
        "size": {"shortest_edge": 65536, "longest_edge": 16777216},
        "max_pixels": 1_000_000,
        "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3
    });
    let config =
        QwenImageProcessorConfig::from_json(&json, Path::new("preprocessor_config.json")).unwrap();
    assert_eq!((config.min_pixels, config.max_pixels), (65536, 1_000_000));
    assert_eq!(
        (
            config.patch_size,
            config.temporal_patch_size,
            config.merge_size
        ),
        (16, 2, 2)
    );
    assert_eq!((config.image_mean, config.image_std), ([0.5; 3], [0.5; 3]));
    assert_eq!(config.filter, ResizeFilter::Bicubic);
}

#[test]
fn processor_config_errors_name_the_file_and_key() {
    let json = serde_json::json!({"patch_size": "sixteen"});
    let err = QwenImageProcessorConfig::from_json(&json, Path::new("/b/preprocessor_config.json"))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/b/preprocessor_config.json") && text.contains("patch_size"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// prompt

fn default_prompt_spec() -> PromptSpec {
    PromptSpec {
        template: UPSTREAM_TEMPLATE.to_string(),
        action_token_format: "<|action_{}|>".to_string(),
        embodied_token: "<|embodied_action|>".to_string(),
        tokens_per_step: 2,
        num_steps: 3,
        num_embodied: 3,
        default_instruction: DEFAULT_INSTRUCTION.to_string(),
    }
}

#[test]
fn action_prompt_repeats_each_step_token() {
    assert_eq!(
        action_prompt(&default_prompt_spec()).unwrap(),
        "<|action_0|><|action_0|><|action_1|><|action_1|><|action_2|><|action_2|>"
    );
}

#[test]
fn prompt_steps_are_frames_over_tubelet_minus_one() {
    assert_eq!(num_action_prompt_steps(8, 2), 3);
    assert_eq!(num_action_prompt_steps(6, 2), 2);
}

#[test]
fn instruction_prompt_fills_the_template() {
    let prompt = instruction_prompt(&default_prompt_spec(), Some("open the drawer")).unwrap();
    assert_eq!(
        prompt,
        "Your task is open the drawer. Infer the temporal dynamics from frames \
         <|action_0|><|action_0|><|action_1|><|action_1|><|action_2|><|action_2|> and produce the \
         corresponding policy actions <|embodied_action|><|embodied_action|><|embodied_action|>."
    );
}

#[test]
fn missing_task_uses_the_default_instruction_but_an_empty_task_stays_empty() {
    let spec = default_prompt_spec();
    assert!(instruction_prompt(&spec, None)
        .unwrap()
        .starts_with("Your task is Execute the robot action.. Infer"));
    assert!(instruction_prompt(&spec, Some(""))
        .unwrap()
        .starts_with("Your task is . Infer"));
}

#[test]
fn braces_in_the_task_are_not_template_fields() {
    let prompt = instruction_prompt(&default_prompt_spec(), Some("put {x} in {{y}}")).unwrap();
    assert!(
        prompt.starts_with("Your task is put {x} in {{y}}. Infer"),
        "{prompt}"
    );
}

#[test]
fn doubled_braces_in_the_template_are_literal_and_unknown_fields_fail() {
    let spec = PromptSpec {
        template: "{{{instruction}}}".into(),
        ..default_prompt_spec()
    };
    assert_eq!(instruction_prompt(&spec, Some("go")).unwrap(), "{go}");
    let spec = PromptSpec {
        template: "{goal}".into(),
        ..default_prompt_spec()
    };
    assert!(matches!(
        instruction_prompt(&spec, Some("go")),
        Err(PreprocessError::Spec(SpecError::PromptTemplate { .. }))
    ));
}

/// A Qwen-style template written for this test: indented block tags (lstrip_blocks), newlines
/// after block tags (trim_blocks), a namespace counter and membership tests.
const INDENTED_TEMPLATE: &str = "{% set n = namespace(images=0) %}
{% for message in messages %}
    <|im_start|>{{ message.role }}
{% for part in message.content %}
    {% if part.type == 'image' or 'image' in part %}
        {% set n.images = n.images + 1 %}
<|vision_start|><|image_pad|><|vision_end|>
    {% elif 'text' in part %}
{{ part.text }}
    {% endif %}
{% endfor %}
<|im_end|>
{% endfor %}
{% if add_generation_prompt %}
<|im_start|>assistant
{% endif %}
";

#[test]
fn chat_rendering_trims_and_lstrips_blocks_like_transformers() {
    let rendered = render_chat(INDENTED_TEMPLATE, 2, "hi").unwrap();
    assert_eq!(
        rendered,
        "    <|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>\n\
         <|vision_start|><|image_pad|><|vision_end|>\nhi\n<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn raise_exception_in_a_template_is_an_error() {
    let template = "{% if messages[0].role != 'system' %}{{ raise_exception('needs a system turn') }}{% endif %}";
    let err = render_chat(template, 0, "x").unwrap_err();
    assert!(err.to_string().contains("needs a system turn"), "{err}");
}

#[test]
fn tojson_writes_python_json_dumps_style() {
    let messages = serde_json::json!([{"role": "user", "content": "a<b>é"}]);
    let out = render_messages("{{ messages[0] | tojson }}", &messages, false).unwrap();
    // minijinja keeps keys sorted; Python would keep insertion order, which here is the same.
    assert_eq!(out, r#"{"content": "a<b>é", "role": "user"}"#);
}

// ---------------------------------------------------------------------------------------------
// image placeholders

#[test]
fn each_image_pad_expands_to_its_own_token_count_in_order() {
    let text = "a<|image_pad|>b<|image_pad|>c";
    assert_eq!(
        expand_image_pads(text, &[2, 1]).unwrap(),
        "a<|image_pad|><|image_pad|>b<|image_pad|>c"
    );
}

#[test]
fn image_pad_count_must_match_the_images() {
    assert!(matches!(
        expand_image_pads("<|image_pad|>", &[1, 1]),
        Err(PreprocessError::ImagePlaceholderCount {
            in_text: 1,
            images: 2,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// Golden fixtures

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vla_jepa")
}

struct Case {
    name: String,
    dir: PathBuf,
    config: Value,
    case: Value,
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases() -> Vec<Case> {
    let root = fixture_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no fixture cases under {}",
        root.display()
    );
    dirs.into_iter()
        .map(|dir| Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            config: read_json(&dir.join("checkpoint/config.json")),
            case: read_json(&dir.join("case.json")),
            dir,
        })
        .collect()
}

impl Case {
    fn backbone(&self) -> PathBuf {
        self.dir.join("backbone")
    }

    fn observations(&self) -> Vec<PathBuf> {
        let mut obs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("obs_"))
            .collect();
        obs.sort();
        assert!(!obs.is_empty(), "{}: no observations", self.name);
        obs
    }

    fn usize_field(&self, key: &str) -> usize {
        self.config[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: config.{key}", self.name)) as usize
    }

    fn str_field(&self, key: &str) -> &str {
        self.config[key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: config.{key}", self.name))
    }

    /// VISUAL input features in config order: the camera order of the prompt.
    fn cameras(&self) -> Vec<String> {
        self.config["input_features"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, f)| f["type"] == "VISUAL")
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn resize_images_to(&self) -> Option<[usize; 2]> {
        self.config["resize_images_to"].as_array().map(|hw| {
            [
                hw[0].as_u64().unwrap() as usize,
                hw[1].as_u64().unwrap() as usize,
            ]
        })
    }

    fn prompt_spec(&self) -> PromptSpec {
        // The world-model tubelet comes from the V-JEPA encoder config upstream; the fixtures'
        // encoders use the same value as `jepa_tubelet_size`.
        PromptSpec {
            template: self.str_field("prompt_template").to_string(),
            action_token_format: self.str_field("special_action_token").to_string(),
            embodied_token: self.str_field("embodied_action_token").to_string(),
            tokens_per_step: self.usize_field("num_action_tokens_per_timestep"),
            num_steps: num_action_prompt_steps(
                self.usize_field("num_video_frames"),
                self.usize_field("jepa_tubelet_size"),
            ),
            num_embodied: self.usize_field("num_embodied_action_tokens_per_instruction"),
            default_instruction: DEFAULT_INSTRUCTION.to_string(),
        }
    }

    fn token_spec(&self) -> PolicyTokenSpec {
        PolicyTokenSpec::for_chunk_size(
            self.usize_field("chunk_size"),
            self.str_field("special_action_token"),
            self.str_field("embodied_action_token"),
        )
    }

    /// The tokenizer as an export holds it: the exporter adds the policy tokens, the runtime
    /// loads the file it wrote.
    fn tokenizer(&self) -> PolicyTokenizer {
        let augmented = vjx_exporter::policy_tokenizer::with_policy_tokens(
            &self.backbone().join("tokenizer.json"),
            &self.token_spec(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        vjx_exporter::policy_tokenizer::save(&augmented, &path).unwrap();
        PolicyTokenizer::load(&path).unwrap()
    }
}

/// The vision inputs of one observation, built the way the runtime will: PNG → [0,1] CHW →
/// 3 channels → LeRobot area resize (if configured and the size differs) → Qwen processor.
fn vision_inputs(case: &Case, obs_dir: &Path) -> QwenVisionInputs {
    let inputs = read_json(&obs_dir.join("inputs.json"));
    let config = QwenImageProcessorConfig::from_backbone_dir(&case.backbone()).unwrap();
    let frames: Vec<Array3<f32>> = case
        .cameras()
        .iter()
        .map(|key| {
            let file = inputs["images"][key]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no image {key}", obs_dir.display()));
            let frame = to_three_channels(load_rgb_f32(&obs_dir.join(file)).unwrap());
            match case.resize_images_to() {
                Some(size) if [frame.dim().1, frame.dim().2] != size => {
                    area_resize(frame.view(), size)
                }
                _ => frame,
            }
        })
        .collect();
    let views: Vec<_> = frames.iter().map(|f| f.view()).collect();
    process_images(&views, &config).unwrap()
}

fn input_ids(
    case: &Case,
    tokenizer: &PolicyTokenizer,
    obs_dir: &Path,
    vision: &QwenVisionInputs,
) -> Vec<i64> {
    let inputs = read_json(&obs_dir.join("inputs.json"));
    let config = QwenImageProcessorConfig::from_backbone_dir(&case.backbone()).unwrap();
    let prompt = instruction_prompt(&case.prompt_spec(), inputs["task"].as_str()).unwrap();
    let template = load_chat_template(&case.backbone()).unwrap();
    let chat = render_chat(&template, case.cameras().len(), &prompt).unwrap();
    tokenizer
        .encode_chat(&chat, &vision.tokens_per_image(config.merge_size))
        .unwrap()
}

fn expected_f32_2d(obs_dir: &Path, name: &str) -> Array2<f32> {
    ndarray_npy::read_npy(obs_dir.join("expected").join(name)).unwrap()
}

#[test]
fn fixture_pixel_values_match_upstream() {
    let mut worst = 0.0f64;
    for case in cases() {
        for obs_dir in case.observations() {
            let expected = expected_f32_2d(&obs_dir, "pixel_values.npy");
            let actual = vision_inputs(&case, &obs_dir).pixel_values;
            assert_eq!(
                actual.dim(),
                expected.dim(),
                "{}/{}",
                case.name,
                obs_dir.display()
            );
            let (mut diff2, mut ref2, mut max_abs) = (0.0f64, 0.0f64, 0.0f64);
            for (a, e) in actual.iter().zip(expected.iter()) {
                let d = f64::from(*a) - f64::from(*e);
                diff2 += d * d;
                ref2 += f64::from(*e) * f64::from(*e);
                max_abs = max_abs.max(d.abs());
            }
            let rel = (diff2 / ref2).sqrt();
            worst = worst.max(rel);
            println!(
                "{}/{}: pixel_values rel L2 {rel:.3e}, max abs {max_abs:.3e}",
                case.name,
                obs_dir.file_name().unwrap().to_string_lossy()
            );
            assert!(
                rel <= 1e-4,
                "{}/{}: pixel_values rel L2 {rel:e}",
                case.name,
                obs_dir.display()
            );
        }
    }
    println!("worst pixel_values rel L2: {worst:.3e}");
}

#[test]
fn fixture_image_grid_thw_match_upstream() {
    for case in cases() {
        for obs_dir in case.observations() {
            let expected: Array2<i64> =
                ndarray_npy::read_npy(obs_dir.join("expected/image_grid_thw.npy")).unwrap();
            assert_eq!(
                vision_inputs(&case, &obs_dir).image_grid_thw,
                expected,
                "{}/{}",
                case.name,
                obs_dir.display()
            );
        }
    }
}

#[test]
fn fixture_input_ids_match_upstream() {
    for case in cases() {
        let tokenizer = case.tokenizer();
        for obs_dir in case.observations() {
            let expected: Array1<i64> =
                ndarray_npy::read_npy(obs_dir.join("expected/input_ids.npy")).unwrap();
            let vision = vision_inputs(&case, &obs_dir);
            let actual = input_ids(&case, &tokenizer, &obs_dir, &vision);
            assert_eq!(
                actual,
                expected.to_vec(),
                "{}/{}",
                case.name,
                obs_dir.display()
            );
        }
    }
}

#[test]
fn fixture_added_tokens_land_at_upstream_ids() {
    for case in cases() {
        let ids = case
            .tokenizer()
            .policy_token_ids(&case.token_spec())
            .unwrap();
        let expected_actions: Vec<u32> = case.case["action_token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids.action, expected_actions, "{}", case.name);
        assert_eq!(
            u64::from(ids.embodied),
            case.case["embodied_action_token_id"].as_u64().unwrap(),
            "{}",
            case.name
        );
    }
}

#[test]
fn real_vocabulary_action_tokens_follow_the_26_qwen_special_tokens() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "real_vocab")
        .expect("fixture case real_vocab");
    let ids = case
        .tokenizer()
        .policy_token_ids(&case.token_spec())
        .unwrap();
    assert_eq!(ids.action, (151_669..151_669 + 28).collect::<Vec<u32>>());
    assert_eq!(ids.embodied, 151_697);
}

#[test]
fn augmented_tokenizer_round_trips_through_save_and_load() {
    let case = cases().into_iter().next().unwrap();
    let tokenizer = case.tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    tokenizer.tokenizer().save(&path, false).unwrap();
    let reloaded = PolicyTokenizer::load(&path).unwrap();
    assert_eq!(
        reloaded.policy_token_ids(&case.token_spec()).unwrap(),
        tokenizer.policy_token_ids(&case.token_spec()).unwrap()
    );
    let obs_dir = &case.observations()[0];
    let vision = vision_inputs(&case, obs_dir);
    assert_eq!(
        input_ids(&case, &reloaded, obs_dir, &vision),
        input_ids(&case, &tokenizer, obs_dir, &vision)
    );
}
