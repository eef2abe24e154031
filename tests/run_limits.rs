//! Inputs that would make a run take unbounded time or memory are refused up front with the
//! bound they broke.

mod common;

use common::*;

fn run_with(edit: impl FnOnce(&mut Vec<String>)) -> std::process::Output {
    let case = any_case();
    let export = exported(&case);
    let mut args = run_args(&observations(&case)[0]);
    edit(&mut args);
    vjx().arg("run").arg(export).args(&args).output().unwrap()
}

#[test]
fn a_task_past_the_text_graphs_token_limit_is_refused_with_both_lengths() {
    let task = "pick up the red cube and place it in the bowl ".repeat(2000);
    let out = run_with(|args| {
        let at = args.iter().position(|a| a == "--task").unwrap();
        args[at + 1] = task.clone();
    });
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("the prompt is 26118 tokens long"), "{err}");
    assert!(
        err.contains("the text graph's shape profile admits") && err.contains("92000 characters"),
        "{err}"
    );
}

#[test]
fn a_thread_count_past_eight_per_core_is_refused() {
    let out = run_with(|args| args.extend(["--threads".into(), "100000".into()]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--threads 100000: give 1 to"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn zero_threads_are_refused() {
    let out = run_with(|args| args.extend(["--threads".into(), "0".into()]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--threads 0: give 1 to"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn actions_that_overflow_to_infinity_are_refused_naming_the_stage() {
    let case = any_case();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    copy_tree(&exported(&case), &export);
    // Finite stats whose range overflows f32 when actions are unnormalized.
    edit_manifest(&export, |m| {
        m["normalization"]["action"]["min"][0] = (-3.0e38).into();
        m["normalization"]["action"]["max"][0] = 3.0e38.into();
    });
    let args = run_args(&observations(&case)[0]);
    let out = vjx().arg("run").arg(&export).args(&args).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("stage `actions` produced a non-finite value")
            && err.contains("no actions are returned"),
        "{err}"
    );
}

fn run_with_task(task: &str) -> std::process::Output {
    run_with(|args| {
        let at = args.iter().position(|a| a == "--task").unwrap();
        args[at + 1] = task.to_string();
    })
}

#[test]
fn a_task_holding_the_embodied_action_token_is_refused_naming_it() {
    let out = run_with_task("pick up <|embodied_action|> the cube");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the task contains `<|embodied_action|>`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_task_holding_an_image_placeholder_is_refused_naming_it() {
    let out = run_with_task("put <|image_pad|> in the bowl");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the task contains `<|image_pad|>`"),
        "{}",
        stderr(&out)
    );
}
