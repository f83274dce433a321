//! Any byte string: framing and decoding never panic, every error yields an encodable
//! NOTIFICATION, and whatever decodes re-encodes to something that decodes to the same.
#![no_main]

use ferrolb_speaker::bgp::wire::{Message, WireContext, frame_length};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame_length(data);
    for four_octet_as in [true, false] {
        let ctx = WireContext { four_octet_as };
        match Message::decode(data, ctx) {
            Ok(message) => {
                if let Ok(bytes) = message.to_bytes(ctx) {
                    assert_eq!(Message::decode(&bytes, ctx).ok(), Some(message));
                }
            }
            Err(e) => {
                assert!(Message::Notification(e.notification()).to_bytes(ctx).is_ok());
            }
        }
    }
});
