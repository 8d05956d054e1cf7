#![no_main]
//! `vix_node::fuzzing::mutations`: any input must end in Ok or a clear error, never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _outcome = vix_node::fuzzing::mutations(data);
});
