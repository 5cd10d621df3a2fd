//! `deskhand report --week`: the week's runs as a readable digest, written
//! into `output/` as a new file by a run of its own (`deskhand undo RUN`
//! takes it back). The digest and its delivery live in
//! `deskhand_runtime::telemetry::report`.

use std::time::SystemTime;

use deskhand_runtime::telemetry::report;

use crate::cli::ReportArgs;
use crate::failure::Failure;
use crate::setup::open_workspace;
use crate::terminal::out;

pub fn report(args: ReportArgs) -> Result<(), Failure> {
    let ReportArgs { week: _, workspace } = args;
    let ws = open_workspace(&workspace)?;
    let delivered = report::deliver(&ws, SystemTime::now())?;
    let runs = match delivered.runs {
        1 => "1 run".to_owned(),
        n => format!("{n} runs"),
    };
    out(&format!(
        "Wrote {} ({runs} in the last seven days). `deskhand undo {}` takes it back.",
        delivered.path.display(),
        delivered.run
    ));
    Ok(())
}
