//! `sqlx::migrate!` embeds the migration files when the crate compiles, but cargo does not
//! know it read them: without this, a migration added to a directory an earlier build
//! already embedded would not be picked up until something else changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
