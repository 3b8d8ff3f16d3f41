//! `tokbench backends`: the engines built into this binary, their versions and build flags; and those it lacks.
use anyhow::Result;

use crate::registry;

pub fn list() -> Result<()> {
    for engine in registry::engines() {
        if engine.is_built_in() {
            let info = registry::create(engine.name, &[])?.engine_info();
            println!("{}	{}	{}", engine.name, info.version, info.build_info);
        } else {
            println!("{}	not built in: {}", engine.name, engine.how_to_build);
        }
    }
    Ok(())
}
