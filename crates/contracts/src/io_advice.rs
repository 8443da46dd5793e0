//! What a user can do about a failed write, by the kind of failure: every crate that reports a
//! file it could not write appends the same advice.

use std::io::ErrorKind;

/// Advice to append to the report of a failed file operation (starting with "; "), or an empty
/// string where the error speaks for itself.
pub fn io_advice(error: &std::io::Error) -> &'static str {
    match error.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => {
            "; out of disk space: free some space or choose a folder on another disk, then resume \
             (checkpoints already saved are intact)"
        }
        ErrorKind::ReadOnlyFilesystem => {
            "; the folder is not writable: make it writable or choose another one, then resume \
             (checkpoints already saved are intact)"
        }
        // Raised by reads too: the advice names both.
        ErrorKind::PermissionDenied => {
            "; permission denied: give this user read and write access to the folder or choose \
             another one, then resume (checkpoints already saved are intact)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_read_only_disks_get_advice_and_other_errors_none() {
        // Linux errno values: ENOSPC, EDQUOT, EFBIG, EROFS, EACCES.
        for (errno, words) in [
            (28, "disk space"),
            (122, "disk space"),
            (27, "disk space"),
            (30, "not writable"),
            (13, "read and write access"),
        ] {
            let advice = io_advice(&std::io::Error::from_raw_os_error(errno));
            assert!(advice.starts_with("; ") && advice.contains(words), "errno {errno}: {advice}");
        }
        assert_eq!(io_advice(&std::io::Error::from(ErrorKind::NotFound)), "");
    }
}
