//! Returning freed memory to the kernel. glibc's allocator keeps what a burst of work freed
//! (an apply of a thousand objects, five hundred pods started) in its arenas, where it counts
//! as the daemon's RSS until the same amount is allocated again; measured with 500 pods, a
//! fifth of the daemon's RSS was such free memory. `malloc_trim(0)` hands every whole free
//! page of every arena back (`madvise`), keeping the arenas themselves.

/// Returns the allocator's free pages to the kernel; whether any were returned. Takes a few
/// milliseconds with tens of MiB of heap (each arena is locked while it is walked): call it
/// off the async threads, after a burst rather than on a timer.
pub fn release_freed_memory() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim takes no pointers and locks each arena it walks; it is safe to
        // call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_goes_back_to_the_kernel() {
        fn rss_kb() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        // Many small blocks (below the mmap threshold, so they live in the arena), then all
        // but the last freed: the arena's top cannot shrink past the last one, so glibc keeps
        // the freed pages unless trimmed.
        let mut blocks: Vec<Vec<u8>> = (0..64 * 1024).map(|i| vec![i as u8; 1000]).collect();
        let last = blocks.pop();
        let before = rss_kb();
        drop(blocks);
        let kept = rss_kb();
        assert!(release_freed_memory());
        let after = rss_kb();
        drop(last);
        // ~64 MiB freed: most of it is returned (other tests' threads allocate meanwhile).
        assert!(
            kept.saturating_sub(after) > 32 * 1024,
            "RSS {before} kB with the blocks, {kept} kB freed, {after} kB trimmed"
        );
    }
}
