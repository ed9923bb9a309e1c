//! Helpers shared by several modules of this test binary (those shared
//! with the benchmarks are in tests/common).

use std::path::PathBuf;

use crate::common::ROOT;

/// The demo config, copied next to a fresh Maildir copy so the test owns its state.
pub fn demo_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(format!("{ROOT}/config/demo.toml"))
        .unwrap()
        .replace("../demo/maildir", &format!("{ROOT}/demo/maildir"))
        .replace("../demo-out", "out")
        .replace("\"../templates\"", &format!("\"{ROOT}/templates\""));
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, cfg).unwrap();
    (dir, path)
}

/// Writes `raw` into the Maildir `md` as delivered at `at` (its mtime is
/// the delivery time the desk reads).
pub fn deliver_at(md: &std::path::Path, name: &str, raw: &str, at: std::time::SystemTime) {
    let tmp = md.join("tmp").join(name);
    std::fs::write(&tmp, raw).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(at)
        .unwrap();
    std::fs::rename(&tmp, md.join("new").join(name)).unwrap();
}
