//! The machine-readable verdict: the whole [`GateReport`], pretty JSON, written atomically.
use std::path::Path;

use anyhow::Result;
use tokbench_record::results::write_json_atomic;

use crate::compare::GateReport;

pub fn write(report: &GateReport, path: &Path) -> Result<()> {
    write_json_atomic(path, report)
}
