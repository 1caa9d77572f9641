//! Fuzzes what a server's page goes through before it reaches the archive: the body parser, then the item
//! classifier. Neither may panic, whatever the bytes; every item of an accepted page becomes an event or a
//! reject that keeps the item's exact text.
#![no_main]

use elevate_archive::api::wire::parse_page;
use elevate_archive::model::Item;
use elevate_archive::sync::classify::classify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(items) = parse_page(data) else { return };
    let window = (chrono::DateTime::UNIX_EPOCH, chrono::Utc::now());
    for raw in &items {
        match classify(raw, window) {
            Item::Event(e) => assert_eq!(e.raw, raw.get()),
            Item::Reject(r) => assert_eq!(r.raw, raw.get()),
        }
    }
});
