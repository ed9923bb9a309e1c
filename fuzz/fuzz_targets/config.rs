//! Any text as the config file: raw TOML, then the checked Config. Must
//! return a config or errors naming a line and a key, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use supportdesk::config::{self, Secrets};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    // Relative paths resolve against a directory that does not exist, so
    // nothing outside is read and nothing is created.
    let _ = config::parse_with(
        Path::new("/nonexistent/fuzz/supportdesk.toml"),
        src,
        Secrets::Skip,
    );
});
