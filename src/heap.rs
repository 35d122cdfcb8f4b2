//! Hands freed heap memory back to the kernel after a burst of work.
//!
//! glibc keeps what a thread frees inside that thread's arena and returns only the free space at
//! the top of the arena. The writer thread interleaves short-lived buffers with long-lived series
//! state, so a large ingest request or an analyzer run leaves megabytes resident long after their
//! data is gone. [`release_free_memory`] has glibc return every free page of every arena.
//! Other C libraries and platforms get a no-op.

/// Returns the free pages of every heap arena to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    glibc::malloc_trim(0);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

// The crate's only foreign declaration. Everything else stays free of unsafe code.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    unsafe extern "C" {
        /// Releases free heap pages. It takes no pointers and locks each arena itself, so any
        /// thread may call it at any time. It returns 1 when memory was released.
        pub safe fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
}
