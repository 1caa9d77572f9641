//! Rebuilds when a migration is added or changed: `refinery::embed_migrations!` reads `migrations/` at compile
//! time, and cargo does not otherwise know the crate depends on that folder.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
