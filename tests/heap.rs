//! Returning freed heap memory: a fragmented heap shrinks in resident memory once released.
//! This file contains a single test so no other test allocates in the process while it measures.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

/// Reads the resident anonymous memory of this process, in KiB.
fn resident_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("RssAnon:"))
        .expect("RssAnon line");
    line.split_whitespace()
        .nth(1)
        .expect("RssAnon value")
        .parse()
        .expect("RssAnon in KiB")
}

#[test]
fn release_returns_fragmented_free_pages() {
    // 40 MB of small blocks; keeping every 64th pins the arena so trimming its top frees little.
    let blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 200]).collect();
    let pinned: Vec<Vec<u8>> = blocks
        .into_iter()
        .enumerate()
        .filter_map(|(i, block)| (i % 64 == 0 || i == 199_999).then_some(block))
        .collect();
    let before = resident_anon_kib();

    anomalyd::heap::release_free_memory();

    let after = resident_anon_kib();
    assert_eq!(pinned.len(), 3_126);
    assert!(
        after + 20_000 < before,
        "resident anonymous memory went from {before} KiB to {after} KiB"
    );
}
