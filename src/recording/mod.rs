//! Recordings (`[recording]`): `recorder` keeps the last seconds of the camera's encoded
//! stream and writes MP4 segments on motion or continuously; `store` names, lists and deletes
//! them (retention by age and by the disk's free space).

pub mod recorder;
pub mod store;

pub use recorder::{RecordingStatus, run};
