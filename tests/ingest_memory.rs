//! Memory that parsing a result body takes, counted by a global allocator that records the
//! peak of live heap bytes of the calling thread. Bodies of the maximum size that parse into
//! many small JSON values grow the heap by a few MiB at most, less than the body itself.

// A global allocator can only be written with unsafe code.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use anomalyd::ingest::{self, Framing, IngestError, MAX_BODY_BYTES};

struct Counting;

thread_local! {
    /// Bytes allocated by this thread less those it freed, which may go below zero.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.get() + layout.size() as isize;
        LIVE.set(live);
        PEAK.set(PEAK.get().max(live));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.set(LIVE.get() - layout.size() as isize);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Parses `body` and returns the outcome with the peak heap growth during the parse.
fn measure(body: &[u8], framing: Framing) -> (Result<usize, IngestError>, isize) {
    let before = LIVE.get();
    PEAK.set(before);
    let outcome = ingest::parse(body, framing).map(|results| results.len());
    let growth = PEAK.get() - before;
    (outcome, growth)
}

/// Fills a body of about `MAX_BODY_BYTES` with `unit` repeated inside `open` and `close`.
fn filled(open: &str, unit: &str, close: &str) -> Vec<u8> {
    let count = (MAX_BODY_BYTES - open.len() - close.len()) / unit.len();
    let mut body = String::with_capacity(MAX_BODY_BYTES);
    body.push_str(open);
    body.push_str(&unit.repeat(count));
    body.push_str(close);
    body.into_bytes()
}

#[test]
fn array_of_numbers_stays_small() {
    let body = filled("[", "0,", "0]");
    let (outcome, growth) = measure(&body, Framing::Json);
    assert_eq!(outcome.unwrap_err(), IngestError::TooManyResults);
    assert!(growth < 4 << 20, "parsing grew the heap by {growth} bytes");
}

#[test]
fn one_huge_result_stays_small() {
    let mut counter = 0_u64;
    let mut body = String::from("{\"system\":\"a\",\"collectors\":{\"c\":{");
    while body.len() < MAX_BODY_BYTES - 64 {
        counter += 1;
        body.push_str(&format!("\"f{counter}\":0,"));
    }
    body.push_str("\"last\":0}}}");
    let (outcome, growth) = measure(body.as_bytes(), Framing::Json);
    let Err(IngestError::Invalid { problems, .. }) = outcome else {
        panic!("expected an invalid result, got {outcome:?}");
    };
    assert!(problems[0].reason.contains("bytes of JSON"), "{problems:?}");
    assert!(growth < 4 << 20, "parsing grew the heap by {growth} bytes");
}

#[test]
fn ndjson_of_empty_objects_stays_small() {
    let body = filled("", "{}\n", "");
    let (outcome, growth) = measure(&body, Framing::Ndjson);
    assert_eq!(outcome.unwrap_err(), IngestError::TooManyResults);
    assert!(growth < 16 << 20, "parsing grew the heap by {growth} bytes");
}
