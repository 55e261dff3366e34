//! Progress reports from a long diff, for a progress bar or a log.

/// A stage of [`crate::diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Building the suffix array of the old image (no steps).
    Index,
    /// Matching the new image: steps are bytes of the new image.
    Match,
    /// Coding segments into ops: steps are bytes of the new image.
    Code,
    /// Applying the finished package to check it (no steps).
    SelfCheck,
}

impl Stage {
    /// Lower-case description, for display.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Index => "indexing the old image",
            Stage::Match => "matching",
            Stage::Code => "coding segments",
            Stage::SelfCheck => "checking the package",
        }
    }
}

/// Receives progress. Called from worker threads, so it must be `Sync`;
/// calls are cheap and must not block.
pub trait Progress: Sync {
    /// A stage begins; `total` steps follow (0 when the stage has none).
    fn stage(&self, stage: Stage, total: u64);
    /// `steps` more steps of the current stage are done.
    fn advance(&self, steps: u64);
}

/// Ignores every report.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: Stage, _: u64) {}
    fn advance(&self, _: u64) {}
}
