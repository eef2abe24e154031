//! The tract backend keeps its outputs as tract values: read on demand, fed to the next graph
//! as they are.

use std::path::{Path, PathBuf};
use vjx_graphs::builder::{DType, Dim, GraphBuilder};
use vjx_runtime::backend::tract::TractBackend;
use vjx_runtime::backend::{Backend, Tensor, TensorValue};

/// `y = x + x` over `[n]`.
fn write_doubler(dir: &Path) -> PathBuf {
    let mut g = GraphBuilder::new("doubler");
    let shape = [Dim::from("n")];
    let x = g.input("x", DType::F32, &shape);
    let y = g.add(&x, &x);
    g.output(&y, "y", DType::F32, &shape);
    g.finish().write(dir, "doubler").unwrap().graph_file
}

#[test]
fn an_output_stays_a_tract_value_until_read() {
    let dir = tempfile::tempdir().unwrap();
    let doubler = TractBackend::default()
        .load(&write_doubler(dir.path()))
        .unwrap();
    let x = Tensor::f32(&[3], vec![1.0, -2.0, 0.25]);
    let y = doubler.run(&[("x", &x)]).unwrap().take("y").unwrap();
    match &y {
        Tensor::Backend(value) => {
            assert_eq!(value.backend(), "tract");
            assert_eq!(value.shape(), &[3]);
        }
        Tensor::Host(_) => panic!("the output was copied to the host"),
    }
    assert_eq!(
        y.into_host().unwrap(),
        TensorValue::f32(&[3], vec![2.0, -4.0, 0.5])
    );
}

#[test]
fn an_output_feeds_the_next_run_and_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let doubler = TractBackend::default()
        .load(&write_doubler(dir.path()))
        .unwrap();
    let x = Tensor::f32(&[2], vec![1.5, -3.0]);
    let twice = doubler.run(&[("x", &x)]).unwrap().take("y").unwrap();
    let four_times = doubler
        .run(&[("x", &twice)])
        .unwrap()
        .take_f32("y")
        .unwrap();
    assert_eq!(four_times.into_raw_vec_and_offset().0, [6.0, -12.0]);
    assert_eq!(
        twice.to_host().unwrap(),
        TensorValue::f32(&[2], vec![3.0, -6.0])
    );
}
