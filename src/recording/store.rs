//! Where recordings live and which go: one directory per day (`2026-12-07/`), one MP4 per
//! segment named by its start time in UTC (`21-50-03.mp4`), the listing `/recordings` serves,
//! and retention (pure: `to_delete`): the oldest segments go when older than the maximum age,
//! or while the disk has less free than its floor.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the recordings' directory {path} cannot be used: {reason}")]
    Directory { path: PathBuf, reason: String },
}

/// One finished (or growing) segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// `2026-12-07/21-50-03.mp4`: the path under the recordings' directory and in the URL.
    pub name: String,
    pub bytes: u64,
    /// Seconds since 1970 (UTC) of its last write.
    pub modified: u64,
    /// Its picture at the start (`2026-12-07/21-50-03.jpg`), when there is one.
    pub thumbnail: Option<String>,
}

/// The thumbnail's name of a segment (`.jpg` for `.mp4`).
pub fn thumbnail_of(name: &str) -> Option<String> {
    name.strip_suffix(".mp4").map(|stem| format!("{stem}.jpg"))
}

/// The path of a segment that starts at `at`, under `root`: `<day>/<time>.mp4`.
pub fn segment_path(root: &Path, at: SystemTime) -> PathBuf {
    let (day, time) = day_and_time(at);
    root.join(day).join(format!("{time}.mp4"))
}

/// `("2026-12-07", "21-50-03")` for a moment, in UTC.
pub fn day_and_time(at: SystemTime) -> (String, String) {
    let seconds = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = (seconds / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    let of_day = seconds % 86_400;
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}-{:02}-{:02}",
            of_day / 3600,
            of_day % 3600 / 60,
            of_day % 60
        ),
    )
}

/// The calendar date of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Whether `name` is a segment's thumbnail's name (`dddd-dd-dd/dd-dd-dd.jpg`).
pub fn is_thumbnail_name(name: &str) -> bool {
    name.strip_suffix(".jpg")
        .is_some_and(|stem| is_segment_name(&format!("{stem}.mp4")))
}

/// Whether `name` is a segment's name as this module makes them (`dddd-dd-dd/dd-dd-dd.mp4`):
/// the only names `/recordings/...` serves (with their thumbnails), so no path leaves the
/// directory.
pub fn is_segment_name(name: &str) -> bool {
    let Some((day, file)) = name.split_once('/') else {
        return false;
    };
    let shaped = |text: &str, pattern: &str| {
        text.len() == pattern.len()
            && text.chars().zip(pattern.chars()).all(|(c, p)| match p {
                'd' => c.is_ascii_digit(),
                other => c == other,
            })
    };
    shaped(day, "dddd-dd-dd") && shaped(file, "dd-dd-dd.mp4")
}

/// Every segment under `root`, oldest first.
pub fn list(root: &Path) -> Vec<Segment> {
    let mut segments = Vec::new();
    let Ok(days) = std::fs::read_dir(root) else {
        return segments;
    };
    for day in days.flatten() {
        let Ok(files) = std::fs::read_dir(day.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = format!(
                "{}/{}",
                day.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            let Ok(meta) = file.metadata() else { continue };
            if !is_segment_name(&name) || !meta.is_file() {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let thumbnail = thumbnail_of(&name).filter(|jpg| root.join(jpg).is_file());
            segments.push(Segment {
                name,
                bytes: meta.len(),
                modified,
                thumbnail,
            });
        }
    }
    // The names sort by time.
    segments.sort_by(|a, b| a.name.cmp(&b.name));
    segments
}

/// The free bytes of the file system holding `path`.
// The conversions are needed on 32-bit boards, whose `statvfs` fields are narrower.
#[allow(clippy::useless_conversion)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    let stats = nix::sys::statvfs::statvfs(path).ok()?;
    Some(u64::from(stats.blocks_available()).saturating_mul(u64::from(stats.fragment_size())))
}

/// What retention deletes, oldest first: every segment older than `max_age`, then more of
/// the oldest while the disk's free space (`free`, counting what is deleted) is under
/// `floor`. The one being written (`writing`) is never deleted.
pub fn to_delete(
    segments: &[Segment],
    now: SystemTime,
    max_age: Duration,
    free: u64,
    floor: u64,
    writing: Option<&str>,
) -> Vec<String> {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut free = free;
    let mut doomed = Vec::new();
    for segment in segments {
        if writing == Some(segment.name.as_str()) {
            continue;
        }
        let too_old = now.saturating_sub(segment.modified) > max_age.as_secs();
        if too_old || free < floor {
            free = free.saturating_add(segment.bytes);
            doomed.push(segment.name.clone());
        }
    }
    doomed
}

/// Deletes `name` under `root` with its thumbnail, and its day's directory once empty.
pub fn delete(root: &Path, name: &str) {
    if !is_segment_name(name) {
        return;
    }
    let path = root.join(name);
    if let Err(e) = std::fs::remove_file(&path) {
        log::warn!("recording: {} cannot be deleted: {e}", path.display());
        return;
    }
    if let Some(jpg) = thumbnail_of(name) {
        let _ = std::fs::remove_file(root.join(jpg));
    }
    if let Some(day) = path.parent() {
        // Fails while the day has other segments, as it should.
        let _ = std::fs::remove_dir(day);
    }
}

/// Makes `root` if needed and checks it takes files.
pub fn prepare(root: &Path) -> Result<(), StoreError> {
    let failed = |reason: String| StoreError::Directory {
        path: root.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(root).map_err(|e| failed(e.to_string()))?;
    let probe = root.join(".peercam-write-check");
    std::fs::write(&probe, b"").map_err(|e| failed(e.to_string()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_start_time_in_utc() {
        let at = UNIX_EPOCH + Duration::from_secs(1_796_680_203);
        assert_eq!(
            day_and_time(at),
            ("2026-12-07".to_owned(), "21-50-03".to_owned())
        );
        assert_eq!(
            segment_path(Path::new("/r"), at),
            Path::new("/r/2026-12-07/21-50-03.mp4")
        );
        assert_eq!(day_and_time(UNIX_EPOCH).0, "1970-01-01");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(day_and_time(leap).0, "2000-02-29");
    }

    #[test]
    fn only_segment_names_are_served() {
        assert!(is_segment_name("2026-12-07/21-50-03.mp4"));
        assert!(is_thumbnail_name("2026-12-07/21-50-03.jpg"));
        assert!(!is_thumbnail_name("2026-12-07/21-50-03.mp4"));
        assert!(!is_thumbnail_name("../21-50-03.jpg"));
        for bad in [
            "../etc/passwd",
            "2026-12-07/../../x.mp4",
            "2026-12-07/21-50-03.mp4/..",
            "2026-12-07",
            "2026-12-07/21-50-03.MP4",
            "x026-12-07/21-50-03.mp4",
        ] {
            assert!(!is_segment_name(bad), "{bad}");
        }
    }

    fn segment(name: &str, bytes: u64, modified: u64) -> Segment {
        Segment {
            name: name.into(),
            bytes,
            modified,
            thumbnail: None,
        }
    }

    #[test]
    fn retention_takes_the_old_then_the_oldest_until_the_floor() {
        let day = 86_400;
        let now = UNIX_EPOCH + Duration::from_secs(100 * day);
        let segments = [
            segment("a", 10, 90 * day),
            segment("b", 10, 99 * day),
            segment("c", 10, 100 * day - 60),
            segment("d", 10, 100 * day),
        ];
        let week = Duration::from_secs(7 * day);
        // Plenty of space: only what is older than a week.
        assert_eq!(to_delete(&segments, now, week, 1000, 100, None), ["a"]);
        // 75 free under a floor of 100: the old one, then two more of 10.
        assert_eq!(
            to_delete(&segments, now, week, 75, 100, None),
            ["a", "b", "c"]
        );
        // The segment being written is kept, whatever the space.
        assert_eq!(
            to_delete(&segments, now, week, 0, 100, Some("d")),
            ["a", "b", "c"]
        );
    }
}
