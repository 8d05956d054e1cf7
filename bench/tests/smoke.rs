//! The whole benchmark program at smoke size: it must run to the end and write its JSON. No
//! figure is asserted (timings on a shared machine are not test material).

use std::process::Command;

#[test]
fn smoke_run_writes_the_results() {
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_vix-bench"))
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "vix-bench --smoke failed: {status}");
    let text = std::fs::read_to_string(out.path()).unwrap();
    let results: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "meta",
        "fsync_per_s",
        "sizes",
        "cross_region",
        "figures",
        "size_ratios",
    ] {
        assert!(results.get(key).is_some(), "no {key:?} in the results");
    }
    assert_eq!(results["meta"]["smoke"], true);
    assert_eq!(results["sizes"].as_array().map(Vec::len), Some(2));
}
