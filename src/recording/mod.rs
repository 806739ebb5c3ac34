//! Recordings (`[recording]`): `recorder` keeps the last seconds of the camera's encoded
//! stream and writes MP4 segments on motion or continuously; `store` names, lists and deletes
//! them (retention by age and by the disk's free space).

pub mod recorder;
pub mod store;

pub use recorder::{RecordingStatus, run};

/// Where the recorder writes and what it says, for `/recordings`.
#[derive(Clone)]
pub struct Recordings {
    pub root: std::path::PathBuf,
    pub status: std::sync::Arc<RecordingStatus>,
}
