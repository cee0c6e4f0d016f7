//! The process's open-file limit. Every client connection and every upstream connection is a
//! descriptor, so an open stream holds two: under a shell's default soft limit of 1,024 the
//! server would stop at about 500 concurrent streams, though the hard limit (524,288 on a
//! Debian login, `LimitNOFILE` under systemd) allows far more. Like Go's runtime and nginx's
//! `worker_rlimit_nofile`, `workjet serve` raises its soft limit to the hard one at start.

/// Below this many descriptors the start-up log warns: a few thousand streams at most.
const LOW: u64 = 4096;

/// The soft limit before and after raising it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: u64,
    pub now: u64,
}

impl OpenFiles {
    /// About how many streams fit: two descriptors each, a few dozen kept for the database,
    /// the runtime and the listeners.
    pub fn streams(self) -> u64 {
        self.now.saturating_sub(64) / 2
    }
}

/// Raises the soft open-file limit to the hard one.
pub fn raise_open_file_limit() -> std::io::Result<OpenFiles> {
    let (before, _) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let now = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok(OpenFiles { before, now })
}

/// Raises the limit and says in the log what it allows (a warning when that is little).
pub fn raise_and_log() {
    match raise_open_file_limit() {
        Ok(files) if files.now < LOW => tracing::warn!(
            open_files = files.now,
            streams = files.streams(),
            "the open-file limit is low: every open stream holds two descriptors, so this server can hold only about {} concurrent streams; raise the hard limit (systemd LimitNOFILE=, ulimit -Hn)",
            files.streams()
        ),
        Ok(files) => tracing::info!(open_files = files.now, raised_from = files.before, streams = files.streams(), "open-file limit"),
        Err(error) => tracing::warn!(%error, "the open-file limit could not be read or raised"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_count_two_descriptors_each_beside_a_reserve() {
        assert_eq!(OpenFiles { before: 1024, now: 1024 }.streams(), 480);
        assert_eq!(OpenFiles { before: 1024, now: 20_000 }.streams(), 9_968);
        assert_eq!(OpenFiles { before: 10, now: 10 }.streams(), 0);
    }
}
