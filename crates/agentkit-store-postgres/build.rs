//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds the `migrations/`
//! directory at compile time but cannot tell Cargo to watch it on stable Rust.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
