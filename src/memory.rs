//! Keeps the daemon's memory from creeping up call after call on glibc.
//!
//! Each call allocates and frees many video frames of a megabyte or more. glibc's default raises
//! its mmap threshold after the first such free, so later frames come from the heap, which
//! fragments and is not given back: RSS grew by ~10 MB per call. A fixed threshold keeps large
//! buffers in their own mappings (returned to the system on free), and a trim after each call
//! hands back what the heap no longer uses. Measured with scripts/bench: 145 MB after ten calls
//! before (130 MB after hanging up), 67 MB in the tenth call and 44 MB after it with this.

/// Allocations at or above this size get their own mapping.
const MMAP_THRESHOLD: i32 = 64 * 1024;

/// Call once at start, before threads allocate.
// glibc's mallopt: no library wraps it.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Gives memory the heap no longer uses back to the system (after a call ends).
// glibc's malloc_trim: no library wraps it.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim is thread-safe and only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
