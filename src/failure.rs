//! How a command fails: a message for the person and the exit code it
//! deserves.

use deskhand_runtime::changeset;

/// A failure and the exit code it deserves: 2 for input the person can
/// fix, 1 for deskhand's own failures.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl From<deskhand_runtime::Error> for Failure {
    fn from(e: deskhand_runtime::Error) -> Self {
        Failure {
            code: if e.is_user_error() { 2 } else { 1 },
            message: e.to_string(),
        }
    }
}

pub fn user_error(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

pub fn change_failure(e: changeset::ChangeError) -> Failure {
    Failure::from(deskhand_runtime::Error::from(e))
}
