//! The YAML examples in README.md pass `anomalyd check`, so a reader who copies them gets a
//! working folder.

use std::process::Command;

/// Returns the text of every fenced block of the given language in `markdown`.
fn fenced_blocks(markdown: &str, language: &str) -> Vec<String> {
    let opening = format!("```{language}");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_end() == opening => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn readme_yaml_examples_pass_check() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let blocks = fenced_blocks(&readme, "yaml");
    assert!(
        blocks.len() >= 2,
        "README.md has {} YAML examples",
        blocks.len()
    );
    let folder = tempfile::tempdir().expect("temp dir");
    for (number, block) in blocks.iter().enumerate() {
        let file = folder.path().join(format!("example-{number}.yaml"));
        std::fs::write(file, block).expect("write example");
    }

    let output = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .arg("check")
        .arg(folder.path())
        .env("ANOMALYD_SECRET_WEBHOOK_URL", "http://127.0.0.1:9/hook")
        .env("ANOMALYD_SECRET_WEBHOOK_TOKEN", "example-token")
        .output()
        .expect("run anomalyd check");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "", "the examples have no warnings either");
    assert!(stderr.contains("0 errors, 0 warnings"), "{stderr}");
}

#[test]
fn check_summary_counts_problems() {
    let folder = tempfile::tempdir().expect("temp dir");
    let broken = "apiVersion: checkstack.io/v1alpha1\nkind: System\nmetadata:\n  name: shop\n\
                  spec:\n  healthcheck:\n    - ref: { kind: Healthcheck, name: web }\n";
    std::fs::write(folder.path().join("shop.yaml"), broken).expect("write file");

    let output = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .arg("check")
        .arg(folder.path())
        .output()
        .expect("run anomalyd check");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("shop.yaml:6:3: error"), "{stdout}");
    assert!(stderr.contains("1 error, 0 warnings"), "{stderr}");
}
