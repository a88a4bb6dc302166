//! Property tests of every parser in `gerbang-core` that reads bytes from outside: the
//! request body, NIK and No KK, the DWH answer filter, and the TOML files an operator or
//! Ditjen edits. Properties, not examples: each test draws many inputs; proptest shrinks a
//! failure to a small one and keeps its seed in a `*.proptest-regressions` file beside the
//! test (commit it). A defect a property found also has a named `regression_*` test.
//!
//! The case counts keep `cargo test -p gerbang-core` within seconds in the debug build; set
//! `PROPTEST_CASES` for a deeper run (e.g. `PROPTEST_CASES=20000`).

#[path = "parsers/body.rs"]
mod body;
#[path = "parsers/files.rs"]
mod files;
#[path = "parsers/filter.rs"]
mod filter;
#[path = "parsers/json.rs"]
mod json;
#[path = "parsers/nik.rs"]
mod nik;

use proptest::test_runner::Config;

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
pub fn cases(cases: u32) -> Config {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default()
    } else {
        Config::with_cases(cases)
    }
}
