//! Criterion glue for tokbench's `cargo bench`: the three custom measurements and the bank that lets one real
//! generation feed all three. The benches themselves are `benches/inference.rs` at the workspace root.
pub mod bank;
pub mod measurement;
