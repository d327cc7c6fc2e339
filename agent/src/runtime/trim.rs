//! Returning freed memory to the kernel. glibc's allocator keeps what a burst of work freed
//! (an apply of a thousand objects, five hundred pods started, a large list served) in its
//! arenas, where it counts as the daemon's RSS until the same amount is allocated again;
//! measured with 500 pods, a fifth of the daemon's RSS was such free memory. `malloc_trim(0)`
//! hands every whole free page of every arena back (`madvise`), keeping the arenas themselves.

use std::time::Duration;

use tokio::sync::watch;

/// How often the daemon looks at its resident set.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// How much the resident set must have grown since the last trim (or its lowest since) for
/// the next: an idle daemon is not walked, one that keeps growing with live data is walked
/// once per this much (at most once per [`LOOK_EVERY`]: a walk takes a few milliseconds).
const GROWTH: u64 = 1 << 20;

/// Returns the allocator's free pages to the kernel; whether any were returned. Takes a few
/// milliseconds with tens of MiB of heap (each arena is locked while it is walked): call it
/// off the async threads.
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

/// This process's resident set in bytes (`/proc/self/statm`).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    Some(pages * page)
}

/// The daemon's trimmer: every [`LOOK_EVERY`], once the resident set has grown by [`GROWTH`]
/// since the last trim, hands what the allocator keeps freed back to the kernel — so that
/// after a burst the RSS falls back to what is live, within seconds, instead of staying at
/// the burst's peak.
pub async fn run(mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut base = resident_bytes().unwrap_or(0);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(now) = resident_bytes() else {
            continue;
        };
        if now >= base + GROWTH {
            let _ = tokio::task::spawn_blocking(release_freed_memory).await;
            base = resident_bytes().unwrap_or(now);
        } else {
            base = base.min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_goes_back_to_the_kernel() {
        let rss_kb = || resident_bytes().unwrap() / 1024;
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
