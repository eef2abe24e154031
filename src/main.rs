//! `vjx`: export VLA policies from LeRobot checkpoints to ONNX, then run and benchmark them.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vjx_exporter::export::{export, ExportOptions};
use vjx_graphs::Precision;
use vjx_runtime::backend::ort::{Device, GpuOptions, OrtBackend, TrtFp16};
use vjx_runtime::backend::tract::TractBackend;
use vjx_runtime::backend::Backend;
use vjx_runtime::bench::{load_twice, run_bench, BenchConfig, BenchReport};
use vjx_runtime::policy::observation::ImageInput;
use vjx_runtime::policy::{ChunkNoise, EpisodeFile, Noise, Observation, PolicyRunner};

#[derive(Parser)]
#[command(
    name = "vjx",
    version,
    about = "Export VLA robot policies from LeRobot checkpoints to ONNX, and run them on the robot."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export a LeRobot checkpoint (local dir or hub id) to an ONNX export dir.
    Export(ExportArgs),
    /// Predict one action chunk from one observation.
    Run(RunArgs),
    /// Measure latency per chunk and per stage.
    Bench(BenchArgs),
    /// Replay a recorded episode, one `select_action` per observation.
    Episode(EpisodeArgs),
    /// Report the nodes of an export that TensorRT's ONNX parser will not take, and the inputs
    /// that need optimization profiles.
    Check(CheckArgs),
    /// Serve an export to robot clients over openpi's websocket protocol (msgpack + numpy),
    /// until SIGTERM or Ctrl-C (requests in flight finish first).
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Export dir written by `vjx export`.
    export_dir: PathBuf,
    /// Address to listen on; the default takes connections from this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port, printed when listening).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// File holding the API key clients must send (`Authorization: Api-Key <key>`, as
    /// openpi-client's `api_key=` does).
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Largest request message in bytes; a larger one ends its connection.
    #[arg(long, default_value_t = 32 << 20, value_name = "BYTES")]
    max_message_bytes: usize,
    /// Largest camera frame height or width accepted.
    #[arg(long, default_value_t = 4096, value_name = "PIXELS")]
    max_image_side: usize,
    /// Longest task text accepted, in bytes.
    #[arg(long, default_value_t = 4096, value_name = "BYTES")]
    max_task_bytes: usize,
    /// Extra request key: `REQUEST_KEY=TARGET`, TARGET a camera's feature key, `state` or
    /// `task` (e.g. `--key observation/image=observation.images.image`). Repeatable.
    #[arg(long = "key", value_name = "REQUEST_KEY=TARGET")]
    keys: Vec<String>,
    /// Chunk k of each connection's episode draws its noise from seed + k.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON line on stdout when listening: the address and the metadata frame.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
struct CheckArgs {
    /// Export dir written by `vjx export`.
    export_dir: PathBuf,
    /// TensorRT version to check against: 10.3 (JetPack 6.1/6.2), 8.6 (JetPack 6.0), 8.5 (JetPack 5.1).
    #[arg(long, default_value = "tensorrt-10.3", value_parser = vjx_runtime::check::Target::NAMES)]
    target: String,
    /// Print one JSON object on stdout instead of the per-graph report.
    #[arg(long)]
    json: bool,
    /// Exit non-zero when any node (or a graph's opset) falls off TensorRT.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct EpisodeArgs {
    /// Export dir written by `vjx export`.
    export_dir: PathBuf,
    /// The episode: `{"task", "calls": [{"images": {key: png}, "state"?}], "noise"?: [{name: npy}]}`,
    /// one call per `select_action`; noise per chunk by the names the policy samples
    /// (VLA-JEPA and DexVLA: `actions`; LingBot-VA: `latents`, `actions`).
    #[arg(long)]
    episode: PathBuf,
    /// Seed of the per-chunk Gaussian noise when episode.json gives none (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Print `{"actions": [...], "actions_normalized": [...]}` (one row per call) on stdout.
    #[arg(long)]
    json: bool,
    /// Write text_embeds.npy and chunk{k}/{vae_latent,video_latents,actions_normalized,actions}.npy here.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// After the last call, VAE-decode the rollout's predicted latents and save them:
    /// `.gif`, `.mp4` (needs ffmpeg on PATH), or a directory of PNG frames.
    #[arg(long, value_name = "PATH")]
    save_predicted_video: Option<PathBuf>,
    /// Frame rate of the saved predicted video.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    video_fps: u32,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
struct ExportArgs {
    /// Checkpoint: a local dir, or a hub id such as lerobot/VLA-JEPA-LIBERO (cache, then
    /// download). DexVLA: a LeRobot-port dir, or the original trainer's checkpoint-N dir.
    #[arg(long)]
    checkpoint: String,
    /// Backbone dir or hub id; defaults to the one the checkpoint's config.json names
    /// (`qwen_model_name`, `wan_pretrained_path`, DexVLA's `qwen2_vl_path`).
    #[arg(long)]
    backbone: Option<String>,
    /// Hub revision (branch, tag or commit) of the checkpoint.
    #[arg(long)]
    revision: Option<String>,
    /// Output export dir (written to a temp dir first, then renamed into place).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output dir.
    #[arg(long)]
    force: bool,
    /// Print a JSON report on stdout (no progress output).
    #[arg(long)]
    json: bool,
    /// Arithmetic of the graphs: fp32 (exact), fp16 (f16 weights and products; norms, softmax,
    /// rotary tables and the Euler loop stay f32), or int8 (8-bit weights for every linear
    /// layer with dynamically quantized activations, for ONNX Runtime).
    #[arg(long, default_value = "fp32", value_parser = Precision::NAMES)]
    precision: String,
    /// DexVLA: the most reasoning tokens generated per chunk before the actions (upstream's
    /// `max_new_tokens`, 256).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_new_tokens: Option<u64>,
    /// DexVLA: actions executed from each chunk before the next is predicted (the original
    /// evaluation replans every 16; default: the whole chunk, or the port's `n_action_steps`).
    #[arg(long, value_name = "N")]
    replan_every: Option<usize>,
}

#[derive(Args, Clone)]
struct ObservationArgs {
    /// A camera frame: `<feature key>=<image path>`, once per camera.
    #[arg(long = "image", value_name = "KEY=PATH")]
    images: Vec<String>,
    /// Robot state, comma-separated raw values.
    #[arg(long, value_name = "V1,V2,...", allow_hyphen_values = true)]
    state: Option<String>,
    /// Task instruction.
    #[arg(long)]
    task: Option<String>,
}

#[derive(Args, Clone)]
struct BackendArgs {
    /// Inference backend: tract (pure Rust) or ort (ONNX Runtime, found at run time).
    #[arg(long, default_value = "tract", value_parser = ["tract", "ort"])]
    backend: String,
    /// Device of the ort backend: cpu, cuda, tensorrt, or auto (TensorRT, else CUDA, else the
    /// CPU, per graph, with a log of where each graph runs). tract runs on the CPU only.
    #[arg(long, default_value = "cpu", value_parser = Device::NAMES)]
    device: String,
    /// TensorRT engine and timing cache dir (default: `<export dir>/tensorrt_cache`).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// TensorRT builder workspace limit, in MiB.
    #[arg(long, default_value_t = 2048)]
    trt_workspace_mb: usize,
    /// TensorRT FP16 kernels: auto (on for fp16 and int8 exports, off for fp32), on, or off.
    #[arg(long, default_value = "auto", value_parser = TrtFp16::NAMES)]
    trt_fp16: String,
    /// CPU threads for the graphs (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct RunArgs {
    /// Export dir written by `vjx export`.
    export_dir: PathBuf,
    #[command(flatten)]
    observation: ObservationArgs,
    /// Initial noise as float32 .npy in upstream's shapes: `<npy>` for the action noise
    /// (VLA-JEPA: [chunk_size, action_dim]), or `<name>=<npy>` per array (LingBot-VA: `latents`
    /// and `actions`). Repeatable.
    #[arg(long, conflicts_with = "seed")]
    noise: Vec<String>,
    /// Seed of the Gaussian initial noise (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Print `{"actions": [...], "timings_ms": {...}}` on stdout (plus `"reasoning"`, its
    /// token count and why it stopped, for policies that reason in text).
    #[arg(long)]
    json: bool,
    /// Write every stage's tensors as .npy files into this dir.
    #[arg(long)]
    dump: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// Export dir written by `vjx export`.
    export_dir: PathBuf,
    #[command(flatten)]
    observation: ObservationArgs,
    /// Timed iterations.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed iterations after the first call.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Export(a) => cmd_export(a),
        Command::Run(a) => cmd_run(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Episode(a) => cmd_episode(a),
        Command::Check(a) => cmd_check(a),
        Command::Serve(a) => cmd_serve(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn cmd_export(a: ExportArgs) -> Result<()> {
    let report = export(&ExportOptions {
        checkpoint: a.checkpoint,
        backbone: a.backbone,
        revision: a.revision,
        out: a.out,
        force: a.force,
        progress: !a.json,
        precision: a.precision.parse().map_err(anyhow::Error::msg)?,
        max_new_tokens: a.max_new_tokens.map(|n| n as usize),
        replan_every: a.replan_every,
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for g in &report.graphs {
            eprintln!(
                "  {:<9} {:<14} {:>6} nodes {:>10.2} MB",
                g.role,
                g.file,
                g.nodes,
                g.weight_bytes as f64 / 1e6
            );
        }
        eprintln!(
            "exported {} in {:.1} s",
            report.out.display(),
            report.seconds
        );
    }
    Ok(())
}

fn backend(args: &BackendArgs, export_dir: &Path) -> Result<Box<dyn Backend>> {
    let device: Device = args.device.parse()?;
    let threads = args.threads.unwrap_or_else(default_threads);
    let most = 8 * default_threads();
    if threads == 0 || threads > most {
        bail!(
            "--threads {threads}: give 1 to {most} (8 per core; this machine has {})",
            default_threads()
        );
    }
    let gpu = GpuOptions {
        cache_dir: Some(
            args.cache_dir
                .clone()
                .unwrap_or_else(|| export_dir.join("tensorrt_cache")),
        ),
        trt_workspace_bytes: args.trt_workspace_mb << 20,
        trt_fp16: args.trt_fp16.parse()?,
        ..GpuOptions::default()
    };
    match args.backend.as_str() {
        "tract" if device == Device::Cpu => Ok(Box::new(TractBackend::with_threads(threads))),
        "tract" => {
            bail!("the tract backend runs on the CPU only; use `--backend ort --device {device}`")
        }
        "ort" => Ok(Box::new(OrtBackend::with_options(device, threads, gpu)?)),
        other => bail!("unknown backend `{other}` (available: tract, ort)"),
    }
}

fn cmd_serve(a: ServeArgs) -> Result<()> {
    let api_key = match &a.api_key_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--api-key-file {}", path.display()))?;
            let key = text.trim().to_string();
            if key.is_empty() {
                bail!("--api-key-file {}: the file is empty", path.display());
            }
            Some(key)
        }
    };
    let key_aliases = a
        .keys
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, t)| (k.to_string(), t.to_string()))
                .with_context(|| format!("--key `{item}`: expected REQUEST_KEY=TARGET"))
        })
        .collect::<Result<Vec<_>>>()?;
    let loopback = matches!(a.host.as_str(), "127.0.0.1" | "::1" | "localhost");
    if !loopback && api_key.is_none() {
        eprintln!(
            "warning: listening on {} without --api-key-file: anyone who can reach this port can drive the robot's policy",
            a.host
        );
    }
    let config = vjx_serve::ServeConfig {
        host: a.host.clone(),
        port: a.port,
        api_key,
        max_message_bytes: a.max_message_bytes,
        limits: vjx_serve::Limits {
            max_image_side: a.max_image_side,
            max_task_bytes: a.max_task_bytes,
        },
        key_aliases,
        seed: a.seed,
    };
    let (backend_args, dir) = (a.backend.clone(), a.export_dir.clone());
    let loader: vjx_serve::Loader = Box::new(move || {
        let backend = backend(&backend_args, &dir).map_err(|e| format!("{e:#}"))?;
        let policy =
            vjx_runtime::policy::load(&dir, backend.as_ref()).map_err(|e| e.to_string())?;
        log_placements(backend.as_ref());
        Ok(policy)
    });
    let json = a.json;
    vjx_serve::serve(config, loader, |listening| {
        let url = format!("ws://{}", listening.addr);
        if json {
            let line = serde_json::json!({
                "listening": url,
                "healthz": format!("http://{}/healthz", listening.addr),
                "metadata": listening.metadata,
            });
            println!("{line}");
        } else {
            eprintln!(
                "serving {} ({}) on {url}; Ctrl-C or SIGTERM to stop",
                a.export_dir.display(),
                listening.metadata["policy_type"].as_str().unwrap_or("?")
            );
        }
    })?;
    eprintln!("vjx serve: stopped");
    Ok(())
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Where each graph landed, on stderr (the ort backend's `auto` device falls back per graph).
fn log_placements(backend: &dyn Backend) {
    if let Some(lib) = backend.runtime_library() {
        eprintln!("  {} {} ({})", lib.name, lib.version, lib.path.display());
    }
    for p in backend.placements() {
        eprintln!("  {:<16} on {}", p.graph, p.provider);
        for why in &p.fallbacks {
            eprintln!("  {:<16}    (not {why})", "");
        }
    }
}

fn parse_state(text: &str) -> Result<Vec<f32>> {
    text.split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .with_context(|| format!("--state: `{v}` is not a number"))
        })
        .collect()
}

fn observation(args: &ObservationArgs) -> Result<Observation> {
    let mut obs = Observation::default();
    for item in &args.images {
        let (key, path) = item
            .split_once('=')
            .with_context(|| format!("--image `{item}`: expected <feature key>=<path>"))?;
        if obs
            .images
            .insert(key.to_string(), ImageInput::Path(PathBuf::from(path)))
            .is_some()
        {
            bail!("--image: camera `{key}` given twice");
        }
    }
    obs.state = args.state.as_deref().map(parse_state).transpose()?;
    obs.task = args.task.clone();
    Ok(obs)
}

/// A deterministic observation for `vjx bench` without `--image`: smooth colour gradients at
/// each camera's declared size, the state's mean (zeros without stats), and a fixed task.
fn sample_observation(policy: &dyn PolicyRunner) -> Observation {
    let manifest = policy.manifest();
    let mut obs = Observation::default();
    for (ci, cam) in manifest.cameras().iter().enumerate() {
        let (h, w) = (
            cam.shape.get(1).copied().unwrap_or(64),
            cam.shape.get(2).copied().unwrap_or(64),
        );
        let frame = ndarray::Array3::from_shape_fn((3, h, w), |(c, y, x)| {
            ((x as f32 / w as f32) * (c as f32 + 1.0) + (y as f32 / h as f32) * (ci as f32 + 0.5))
                % 1.0
        });
        obs.images.insert(cam.key.clone(), ImageInput::Frame(frame));
    }
    if let Some(dim) = policy.state_dim() {
        let mean = policy
            .manifest()
            .normalization
            .state
            .as_ref()
            .and_then(|n| n.mean.clone())
            .unwrap_or_else(|| vec![0.0; dim]);
        obs.state = Some(mean);
    }
    obs.task = Some("pick up the object and place it in the basket".to_string());
    obs
}

/// The first chunk's noise: the action noise as a bare path, or `name=path` per array.
fn read_noise(items: &[String]) -> Result<Noise> {
    let mut chunk = ChunkNoise::new();
    for item in items {
        let (name, path) = item.split_once('=').unwrap_or(("actions", item));
        let array = vjx_runtime::npy::read_f32(Path::new(path))
            .with_context(|| format!("--noise {item}"))?;
        if chunk.insert(name.to_string(), array).is_some() {
            bail!("--noise: `{name}` given twice");
        }
    }
    Ok(Noise::Given(vec![chunk]))
}

fn cmd_run(a: RunArgs) -> Result<()> {
    let obs = observation(&a.observation)?;
    let backend = backend(&a.backend, &a.export_dir)?;
    let policy = vjx_runtime::policy::load(&a.export_dir, backend.as_ref())?;
    if !a.json {
        log_placements(backend.as_ref());
    }
    let noise = match a.noise.is_empty() {
        false => read_noise(&a.noise)?,
        true => Noise::Seeded(a.seed.unwrap_or(0)),
    };
    let mut episode = policy.start_episode(noise);
    episode.keep_intermediates(a.dump.is_some());
    let prediction = episode.predict_chunk(&obs)?;
    if let Some(dir) = &a.dump {
        write_dump(dir, &prediction.intermediates)?;
    }
    if a.json {
        let timings: serde_json::Map<String, serde_json::Value> = prediction
            .timings_ms
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        let mut out = serde_json::json!({ "actions": prediction.rows(), "timings_ms": timings });
        if let Some(reasoning) = &prediction.reasoning {
            out["reasoning"] = serde_json::json!(reasoning.text);
            out["reasoning_tokens"] = serde_json::json!(reasoning.tokens);
            out["reasoning_stop"] = serde_json::to_value(reasoning.stop)?;
        }
        println!("{}", serde_json::to_string(&out)?);
    } else {
        if let Some(reasoning) = &prediction.reasoning {
            eprintln!(
                "reasoning ({} tokens, {}): {}",
                reasoning.tokens,
                match reasoning.stop {
                    vjx_runtime::policy::StopReason::EndOfTurn => "ended by <|im_end|>",
                    vjx_runtime::policy::StopReason::TokenLimit =>
                        "stopped at the token limit without <|im_end|>",
                },
                reasoning.text
            );
        }
        for (i, row) in prediction.rows().iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>9.4}")).collect();
            println!("{i:>3} {}", cells.join(" "));
        }
        let total: f64 = prediction.timings_ms.iter().map(|(_, v)| v).sum();
        eprintln!(
            "chunk of {} actions in {total:.1} ms",
            prediction.chunk_size
        );
    }
    Ok(())
}

/// Writes each tensor as `<dir>/<name>.npy` (a name may hold sub-dirs, e.g. `chunk0/actions`).
fn write_dump(
    dir: &Path,
    tensors: &std::collections::BTreeMap<String, vjx_runtime::backend::TensorValue>,
) -> Result<()> {
    use vjx_runtime::backend::TensorValue;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, value) in tensors {
        let path = dir.join(format!("{name}.npy"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        match value {
            TensorValue::F32(a) => vjx_runtime::npy::write_f32(&path, a)?,
            TensorValue::I64(a) => vjx_runtime::npy::write_i64(&path, a)?,
        }
    }
    Ok(())
}

fn cmd_episode(a: EpisodeArgs) -> Result<()> {
    use vjx_runtime::policy::lingbot_va::predicted_video;
    let file = EpisodeFile::read(&a.episode)?;
    let backend = backend(&a.backend, &a.export_dir)?;
    let policy = vjx_runtime::policy::load(&a.export_dir, backend.as_ref())?;
    if !a.json {
        log_placements(backend.as_ref());
    }
    let noise = file
        .noise
        .clone()
        .unwrap_or(Noise::Seeded(a.seed.unwrap_or(0)));
    let mut episode = policy.start_episode(noise);
    episode.keep_intermediates(a.dump.is_some());
    if let Some(path) = &a.save_predicted_video {
        predicted_video::VideoFormat::for_path(path)?;
        let Some(video) = episode.predicted_video() else {
            bail!(
                "{}: --save-predicted-video: a `{}` policy predicts no video",
                a.export_dir.display(),
                policy.manifest().policy_type()
            );
        };
        video.check_decodable()?;
        video.keep();
    }
    let (mut actions, mut normalized) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for (i, obs) in file.calls.iter().enumerate() {
        let step = episode
            .select_action(obs)
            .with_context(|| format!("call {i} of {}", a.episode.display()))?;
        if step.predicted && !a.json {
            let ms: f64 = episode.take_timings().iter().map(|(_, v)| v).sum();
            eprintln!(
                "  call {i:>4}: chunk {} predicted in {ms:.1} ms",
                episode.chunks() - 1
            );
        }
        actions.push(step.action);
        normalized.push(step.action_normalized);
    }
    if let Some(path) = &a.save_predicted_video {
        let video = episode
            .predicted_video()
            .expect("checked before the rollout");
        let frames = video.decode()?;
        let written = predicted_video::write_video(path, frames.view(), a.video_fps)?;
        if !a.json {
            eprintln!("predicted video: {written}");
        }
    }
    if let Some(dir) = &a.dump {
        write_dump(dir, &episode.intermediates())?;
    }
    if a.json {
        let out = serde_json::json!({ "actions": actions, "actions_normalized": normalized });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        for (i, row) in actions.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>9.4}")).collect();
            println!("{i:>4} {}", cells.join(" "));
        }
        eprintln!(
            "{} calls, {} chunks in {:.1} s",
            file.calls.len(),
            episode.chunks(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn cmd_check(a: CheckArgs) -> Result<()> {
    let target: vjx_runtime::check::Target = a.target.parse()?;
    let report = vjx_runtime::check::check_export(&a.export_dir, target)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    let s = &report.summary;
    if a.strict && s.falls_off_tensorrt {
        let opsets = match s.unsupported_opsets {
            0 => String::new(),
            n => format!(" and {n} graphs' opsets"),
        };
        bail!(
            "--strict: {} nodes{opsets} of {} fall off {}",
            s.unsupported,
            a.export_dir.display(),
            target.label()
        );
    }
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    let backend = backend(&a.backend, &a.export_dir)?;
    let (policy, starts) = load_twice(&a.export_dir, backend.as_ref())?;
    if !a.json {
        log_placements(backend.as_ref());
    }
    let obs = if a.observation.images.is_empty() {
        let mut obs = sample_observation(policy.as_ref());
        if a.observation.state.is_some() || a.observation.task.is_some() {
            let given = observation(&a.observation)?;
            obs.state = given.state.or(obs.state);
            obs.task = given.task.or(obs.task);
        }
        obs
    } else {
        observation(&a.observation)?
    };
    let cfg = BenchConfig {
        iters: a.iters,
        warmup: a.warmup,
        backend: backend.name().to_string(),
        device: a.backend.device.clone(),
        threads: a.backend.threads.unwrap_or_else(default_threads),
        starts,
        runtime_library: backend.runtime_library(),
    };
    let quiet = a.json;
    let report = run_bench(policy.as_ref(), &obs, &cfg, |i, n| {
        if !quiet {
            eprint!("\r  iteration {i}/{n}");
        }
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!();
        print_bench_table(&report);
    }
    Ok(())
}

fn print_bench_table(r: &BenchReport) {
    println!(
        "{} on {} ({}, {} threads), {} precision, {} iterations",
        r.policy_type, r.backend, r.device, r.threads, r.precision, r.iters
    );
    let l = &r.latency_ms;
    println!(
        "latency per chunk  p50 {:.2} ms  p90 {:.2}  p99 {:.2}  min {:.2}  max {:.2}",
        l.p50, l.p90, l.p99, l.min, l.max
    );
    println!("{:<14} {:>10} {:>10}", "stage", "p50 ms", "p90 ms");
    for name in &r.stage_order {
        let s = &r.stages_ms[name];
        let runs = s
            .runs_per_chunk
            .map(|n| format!("  ×{n:.0} per chunk"))
            .unwrap_or_default();
        println!("{name:<14} {:>10.2} {:>10.2}{runs}", s.p50, s.p90);
    }
    if let Some(m) = &r.cache_memory {
        println!(
            "carried between chunks: KV cache {:.2} MB, VAE caches {:.2} MB",
            m.kv_cache_bytes as f64 / 1e6,
            m.vae_cache_bytes as f64 / 1e6
        );
    }
    println!(
        "{:.2} chunks/s, control rate {:.1} Hz ({} actions per chunk), first call {:.1} ms, peak RSS {}",
        r.chunks_per_s,
        r.control_hz,
        r.n_action_steps,
        r.first_call_ms,
        r.peak_rss_mb.map(|m| format!("{m:.0} MB")).unwrap_or_else(|| "n/a".into())
    );
    println!(
        "first start {:.1} ms (TensorRT engine cache {}), warm start {:.1} ms",
        r.first_start_ms,
        r.first_start_engine_cache.name(),
        r.warm_start_ms
    );
}
