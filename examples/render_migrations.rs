//! Writes the migrations rendered from the description of the shared tables (`src/store/schema.rs`) into
//! `migrations/` and `migrations_postgres/`, after a change to the description. A unit test fails while a rendered
//! file differs from what is on disk.
//!
//! `cargo run --example render_migrations`

use std::path::Path;
use std::process::ExitCode;

use hsmwatch::store::schema::{description_faults, rendered_migrations};

fn main() -> ExitCode {
    let faults = description_faults();
    if !faults.is_empty() {
        for fault in faults {
            eprintln!("src/store/schema.rs: {fault}");
        }
        return ExitCode::FAILURE;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, text) in rendered_migrations() {
        let target = root.join(&path);
        if std::fs::read_to_string(&target).is_ok_and(|on_disk| on_disk == text) {
            println!("{path}: as rendered");
            continue;
        }
        if let Err(error) = std::fs::write(&target, text) {
            eprintln!("{path}: {error}");
            return ExitCode::FAILURE;
        }
        println!("{path}: written");
    }
    ExitCode::SUCCESS
}
