//! The Debian package from `cargo deb`: its files, unit, conffiles and maintainer scripts.
//! Skipped with a message when no package was built, unless `CI` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Finds the newest `.deb` under `target/debian` (or `$CARGO_TARGET_DIR/debian`).
fn package() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("debian");
    let mut debs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "deb"))
        .filter_map(|path| Some((path.metadata().ok()?.modified().ok()?, path)))
        .collect();
    debs.sort();
    debs.pop().map(|(_, path)| path)
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let output = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("run dpkg-deb");
    assert!(
        output.status.success(),
        "dpkg-deb {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("dpkg-deb prints UTF-8")
}

/// Reads one member of the control archive, such as `conffiles`.
fn control_member(deb: &Path, member: &str) -> String {
    let output = Command::new("dpkg-deb")
        .arg("--info")
        .arg(deb)
        .arg(member)
        .output()
        .expect("run dpkg-deb --info");
    assert!(output.status.success(), "no {member} in the package");
    String::from_utf8(output.stdout).expect("control files are UTF-8")
}

#[test]
fn package_contents_and_conffiles() {
    let Some(deb) = package() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no package under target/debian; .ci/run builds it with `cargo deb` before the tests"
        );
        eprintln!("skipped: no package under target/debian (run `cargo deb`)");
        return;
    };

    let files = dpkg_deb(&["--contents"], &deb);
    for path in [
        "./usr/bin/anomalyd",
        "/systemd/system/anomalyd.service",
        "./etc/default/anomalyd",
        "./etc/anomalyd/gitops/systems/anomalyd.yaml",
        "./etc/anomalyd/gitops/healthchecks/anomalyd-healthz.yaml",
        "./usr/share/doc/anomalyd/examples/gitops/notifiers/ops-webhook.yaml",
        "./usr/share/doc/anomalyd/README.md",
    ] {
        assert!(files.contains(path), "{path} missing from:\n{files}");
    }
    assert!(
        !files.contains("./etc/anomalyd/gitops/notifiers"),
        "the notifier example needs a secret and must not be in the watched folder"
    );
    let default_line = files
        .lines()
        .find(|l| l.ends_with("./etc/default/anomalyd"))
        .expect("the defaults file is listed");
    assert!(
        default_line.starts_with("-rw-------"),
        "secrets may go in /etc/default/anomalyd: {default_line}"
    );

    let conffiles = control_member(&deb, "conffiles");
    for path in [
        "/etc/default/anomalyd",
        "/etc/anomalyd/gitops/systems/anomalyd.yaml",
        "/etc/anomalyd/gitops/healthchecks/anomalyd-healthz.yaml",
    ] {
        assert!(
            conffiles.lines().any(|l| l == path),
            "{path} is not a conffile:\n{conffiles}"
        );
    }

    let control = dpkg_deb(&["--field"], &deb);
    assert!(control.contains("Package: anomalyd"), "{control}");
    assert!(control.contains("Depends: libc6"), "{control}");

    let postinst = control_member(&deb, "postinst");
    assert!(postinst.contains("deb-systemd-helper"), "{postinst}");
    assert!(postinst.contains("anomalyd.service"), "{postinst}");
}

/// The unit in the package is the one in the repository.
#[test]
fn package_unit_matches_repository() {
    let Some(deb) = package() else {
        eprintln!("skipped: no package under target/debian (run `cargo deb`)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new("dpkg-deb")
        .arg("--extract")
        .arg(&deb)
        .arg(dir.path())
        .status()
        .expect("run dpkg-deb --extract");
    assert!(status.success());
    let unit = ["usr/lib/systemd/system", "lib/systemd/system"]
        .iter()
        .map(|d| dir.path().join(d).join("anomalyd.service"))
        .find(|p| p.exists())
        .expect("the unit is installed");
    let packaged = std::fs::read_to_string(unit).expect("read the packaged unit");
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/anomalyd.service"
    ))
    .expect("read the unit");
    assert_eq!(packaged, source);
}
